package proc

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// commandWaitDelay bounds how long a cancelled command (sent SIGTERM) and
// the pipes of what it left running may delay its caller.
const commandWaitDelay = 5 * time.Second

// Command is exec.CommandContext for the commands safe-restart runs
// (starters, config tests, systemctl): cancelling ctx sends SIGTERM, not
// SIGKILL, and Wait returns at most commandWaitDelay later.
func Command(ctx context.Context, argv []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...) //permit:exec.CommandContext the one place commands are made
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = commandWaitDelay
	return cmd
}

// CombinedOutput runs argv (see command) and returns its stdout and
// stderr, interleaved.
func CombinedOutput(ctx context.Context, argv []string) (string, error) {
	return RunCombined(Command(ctx, argv))
}

// RunCombined runs cmd and returns its stdout and stderr, interleaved.
func RunCombined(cmd *exec.Cmd) (string, error) {
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.String(), err
}

// WithoutVars returns env without the variables named, nor their numbered
// forms (NAME_1, NAME_2, ...: php-fpm's FPM_SOCKETS_1 and the like).
func WithoutVars(env, names []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			rest, numbered := strings.CutPrefix(name, n+"_") // FPM_SOCKETS_1 ...
			_, err := strconv.Atoi(rest)
			drop = drop || name == n || (numbered && err == nil)
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}
