// Command safe-restart restarts web servers without leaving them down or
// leaking their IPC objects. See README.md and `safe-restart --help`.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	// A SIGINT or SIGTERM that comes once execute has stopped listening (a
	// cancelled job signalling again as the operation ends) must not kill
	// the process before it exits with the operation's code: this channel
	// keeps catching them, and nobody reads it.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGINT, syscall.SIGTERM)
	os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
}

// execute runs one command line and returns the process exit code.
func execute(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logs := newBatchWriter(stderr)
	defer logs.Close()
	d := &deps{stdout: stdout, stderr: stderr, logs: logs}
	root := newRootCmd(d)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	started := time.Now()
	cmd, err := root.ExecuteContextC(ctx)
	code := reportExit(d, err)
	recordLastOperation(d, cmd, started, code, err)
	return code
}
