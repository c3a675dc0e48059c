package main

import (
	"encoding/json"
	"os"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/ipcguard"
)

func newIPCDiffCmd(d *deps) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "diff BEFORE.json AFTER.json",
		Short: "Show the IPC objects added, removed and changed between two 'ipc ls --json' snapshots",
		Example: `  safe-restart ipc ls --json > before.json
  apache2ctl graceful
  safe-restart ipc ls --json > after.json
  safe-restart ipc diff before.json after.json`,
		Args: exactArgs(2, "two snapshot files"),
		RunE: func(c *cobra.Command, args []string) error {
			before, err := readReport(args[0])
			if err != nil {
				return err
			}
			after, err := readReport(args[1])
			if err != nil {
				return err
			}
			diff := ipcguard.Diff(before.Snapshot, after.Snapshot)
			if asJSON {
				return writeJSON(d.stdout, diff)
			}
			if diff.Empty() {
				d.printf("no changes\n")
				return nil
			}
			d.printf("%s", diff)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the diff as JSON")
	return c
}

// readReport reads a file written by 'ipc ls --json'.
func readReport(path string) (ipcguard.Report, error) {
	var r ipcguard.Report
	data, err := os.ReadFile(path)
	if err != nil {
		return r, usagef("give files written by 'safe-restart ipc ls --json'", "read snapshot: %v", err)
	}
	if err := json.Unmarshal(data, &r); err != nil || r.Snapshot.Taken.IsZero() {
		return r, usagef("give files written by 'safe-restart ipc ls --json'", "%s is not an ipc snapshot", path)
	}
	return r, nil
}
