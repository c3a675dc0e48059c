package main

import (
	"github.com/spf13/cobra"
)

type ipcLsOptions struct {
	sig    sigFlags
	json   bool
	proofs bool
}

func newIPCLsCmd(d *deps) *cobra.Command {
	o := &ipcLsOptions{}
	c := &cobra.Command{
		Use:   "ls",
		Short: "List every IPC object with its verdict and proof, plus kernel limits and usage",
		Example: `  # every object; without a service nothing is orphan or foreign, only live or unknown
  safe-restart ipc ls

  # judge by Apache's signature (User read from /etc/apache2/apache2.conf), with proofs
  safe-restart ipc ls --service apache2 --proof

  # the whole snapshot and all verdicts as JSON (input for 'ipc diff')
  safe-restart ipc ls --json > before.json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(c *cobra.Command, _ []string) error {
			r, opts, err := o.sig.inspect(c, d)
			if err != nil {
				return err
			}
			if o.json {
				return writeJSON(d.stdout, r)
			}
			if opts.Signature != nil {
				d.printf("signature: %s; lineage window %s\n", opts.Signature, opts.Window)
			}
			if err := writeJudgements(d.stdout, r.Judgements, o.proofs); err != nil {
				return err
			}
			writeCounts(d.stdout, r.Count())
			writeUsage(d.stdout, r.Snapshot)
			return nil
		},
	}
	o.sig.register(c)
	c.Flags().BoolVar(&o.json, "json", false, "print the snapshot and the verdicts as JSON")
	c.Flags().BoolVar(&o.proofs, "proof", false, "print every fact behind each verdict")
	return c
}
