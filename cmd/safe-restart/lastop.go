package main

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/server"
)

// recordedOps are the commands that change a service's state, by command
// path, with the operation name their outcome is recorded under.
// `safe-restart SERVICE` is a reload (with the same fallback).
var recordedOps = map[string]string{
	"safe-restart":          "reload",
	"safe-restart reload":   "reload",
	"safe-restart start":    "start",
	"safe-restart stop":     "stop",
	"safe-restart restart":  "restart",
	"safe-restart ipc reap": "ipc-reap",
}

// results name the exit codes in a last-operation record.
var results = map[int]string{exitOK: "ok", exitFailed: "failed", exitRefused: "refused", exitRecovered: "recovered"}

// recordLastOperation saves the outcome of a state-changing command that
// ran (cmd, begun at started, ending with code and err) as its service's
// last operation, for `safe-restart metrics`. Usage errors, dry runs,
// plans without --yes and --help change nothing and are not recorded. A
// failure to save is logged; it never changes the exit code.
func recordLastOperation(d *deps, cmd *cobra.Command, started time.Time, code int, err error) {
	if cmd == nil || code == exitUsage || !changesState(cmd) {
		return
	}
	op, ok := recordedOps[cmd.CommandPath()]
	if !ok {
		return
	}
	service, serviceDir, stateDir := flagValue(cmd, "service"), flagValue(cmd, "service-dir"), flagValue(cmd, "state-dir")
	if op != "ipc-reap" && len(cmd.Flags().Args()) == 1 {
		service = cmd.Flags().Args()[0]
	}
	if service == "" || stateDir == "" {
		return // no service named (ipc reap by explicit signature)
	}
	p, perr := server.ResolveService(service, serviceDir)
	if perr != nil {
		return
	}
	rec := supervise.LastOperation{Service: p.Name, Op: op, ExitCode: code, Result: results[code], Started: started, Duration: time.Since(started), Receipt: d.receipt}
	if err != nil {
		rec.Error = err.Error()
	}
	if serr := supervise.SaveLastOperation(supervise.StateDir(stateDir).LastOperations(), rec); serr != nil && d.log != nil {
		d.log.Warn().Err(serr).Msg("the outcome was not recorded for safe-restart metrics")
	}
}

// changesState reports whether cmd, as invoked, may have changed anything:
// not with --help, --version (cobra prints it and runs nothing, even after
// a SERVICE), --dry-run, or (ipc reap) without --yes.
func changesState(cmd *cobra.Command) bool {
	if flagValue(cmd, "help") == "true" || flagValue(cmd, "version") == "true" || flagValue(cmd, "dry-run") == "true" {
		return false
	}
	return cmd.Flags().Lookup("yes") == nil || flagValue(cmd, "yes") == "true"
}

// flagValue is the value of cmd's flag name, "" when it has none.
func flagValue(cmd *cobra.Command, name string) string {
	if f := cmd.Flags().Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}
