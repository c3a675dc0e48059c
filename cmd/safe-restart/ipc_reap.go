package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/ipcguard"
)

type ipcReapOptions struct {
	sig    sigFlags
	yes    bool
	dryRun bool
	json   bool
}

func newIPCReapCmd(d *deps) *cobra.Command {
	o := &ipcReapOptions{}
	c := &cobra.Command{
		Use:   "reap",
		Short: "Remove the IPC objects proven orphan (prints the plan unless --yes)",
		Long: `Judge every object by the service's signature and remove exactly the ones
proven orphan, each re-checked unchanged right before removal. Without --yes
(or with --dry-run) it prints the plan and changes nothing. Every removal is
logged with its proof.`,
		Example: `  # what would be removed for Apache, with the proof of each
  safe-restart ipc reap --service apache2

  # remove them
  safe-restart ipc reap --service apache2 --yes

  # a server without a profile: name its signature
  safe-restart ipc reap --owner nobody --creator root --nsems 1 --key private \
      --exe /usr/local/apache/bin/httpd --yes`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error { return runIPCReap(c, d, o) },
	}
	o.sig.register(c)
	c.Flags().BoolVar(&o.yes, "yes", false, "remove the orphans (default: print the plan only)")
	c.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the plan and change nothing, even with --yes")
	c.Flags().BoolVar(&o.json, "json", false, "print the outcome of each object as JSON")
	return c
}

func runIPCReap(c *cobra.Command, d *deps, o *ipcReapOptions) error {
	if !o.sig.given() {
		return usagef("give --service apache2, or --owner and --exe", "ipc reap needs a signature")
	}
	r, opts, err := o.sig.inspect(c, d)
	if err != nil {
		return err
	}
	dry := o.dryRun || !o.yes
	reaper := ipcguard.Reaper{DryRun: dry, Source: opts.Source, Log: d.log.With().Str("server", opts.Signature.Service).Logger()}
	start := time.Now()
	outcomes, err := reaper.Reap(c.Context(), r.Orphans())
	d.log.Info().Int("orphans", len(outcomes)).Bool("dry_run", dry).Dur("took", time.Since(start)).Msg("reap finished")
	if o.json {
		if jerr := writeJSON(d.stdout, outcomes); jerr != nil {
			return jerr
		}
	} else {
		writeReapSummary(d, r, outcomes, dry)
	}
	if err != nil {
		return &exitError{code: exitFailed, err: err}
	}
	return nil
}

func writeReapSummary(d *deps, r ipcguard.Report, outcomes []ipcguard.Outcome, dry bool) {
	var planned []ipcguard.Judgement
	removed, skipped, failed := 0, 0, 0
	for _, o := range outcomes {
		switch {
		case o.Error != "":
			failed++
		case o.Skipped != "":
			skipped++
		case o.Removed:
			removed++
		default:
			planned = append(planned, o.Judgement)
		}
	}
	counts := r.Count()
	kept := fmt.Sprintf("kept %d live, %d unknown, %d foreign", counts[ipcguard.Live], counts[ipcguard.Unknown], counts[ipcguard.Foreign])
	if dry {
		if len(planned) > 0 {
			_ = writeJudgements(d.stdout, planned, true)
		}
		d.printf("plan: %d orphan(s) to remove; %s (dry run: nothing changed; --yes removes)\n", len(planned), kept)
		return
	}
	d.printf("removed %d orphan(s), left %d that changed since their proof, %d failed; %s\n", removed, skipped, failed, kept)
	if counts[ipcguard.Unknown] > 0 {
		d.printf("%s\n", "unknown objects were kept: 'safe-restart ipc ls --proof' says what would settle each")
	}
}
