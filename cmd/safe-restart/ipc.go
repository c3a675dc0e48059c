package main

import (
	"github.com/spf13/cobra"
)

func newIPCCmd(d *deps) *cobra.Command {
	c := &cobra.Command{
		Use:   "ipc",
		Short: "Inventory, diff and safely reap SysV and POSIX IPC objects",
		Long: `Every SysV semaphore set, shared memory segment and message queue, and every
POSIX object in /dev/shm, gets a verdict with its proof:

  orphan   proven left behind by a dead generation of the service: safe to remove
  live     proven in use
  foreign  not the service's: never touched
  unknown  neither could be proven: kept, with what would settle it

A semaphore set is an orphan only when it matches the service's signature,
nobody waits on it, no semaphore's last-operation pid is a live process that
started before that operation, and no live process of the service can hold it
(a live master may use sets created up to --lineage-window before it started).
It is checked again, unchanged, right before removal.`,
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("see safe-restart ipc --help", "unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return nil
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	c.AddCommand(newIPCLsCmd(d), newIPCReapCmd(d), newIPCDiffCmd(d))
	return c
}
