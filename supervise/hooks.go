package supervise

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

// defaultHookTimeout bounds a hook when its timeout is not set.
const defaultHookTimeout = 30 * time.Second

// preStop runs the pre-stop hook, when there is one, before a stop that
// leaves a gap: its failure refuses the restart (ErrPreStopHook), nothing
// touched.
func (st StartOptions) preStop(ctx context.Context, rep *RestartReport) error {
	return st.gapHook(ctx, rep, "pre-stop", st.Hooks.PreStop, ErrPreStopHook, "the old master was not touched")
}

// postStart runs the post-start hook, when there is one, once the new
// master of a restart with a gap is verified: its failure fails the
// restart (ErrPostStartHook) while the server serves.
func (st StartOptions) postStart(ctx context.Context, rep *RestartReport) error {
	return st.gapHook(ctx, rep, "post-start", st.Hooks.PostStart, ErrPostStartHook, "the new master serves")
}

// gapHook runs command (none when "") as the hook of phase, adds its run
// to rep, and wraps its failure in sentinel, saying what state it leaves.
func (st StartOptions) gapHook(ctx context.Context, rep *RestartReport, phase, command string, sentinel error, state string) error {
	run, err := st.runHook(ctx, phase, command)
	if run == nil {
		return nil
	}
	rep.Hooks = append(rep.Hooks, *run)
	if err != nil {
		return fmt.Errorf("%w: %w; %s", sentinel, err, state)
	}
	return nil
}

// runHook runs command under sh -c, bounded by the hooks' timeout, with
// SAFE_RESTART_SERVICE and SAFE_RESTART_PHASE set, and logs its output;
// nil when command is "".
func (st StartOptions) runHook(ctx context.Context, phase, command string) (*verify.HookRun, error) {
	if command == "" {
		return nil, nil
	}
	timeout := cmp.Or(st.Hooks.Timeout, defaultHookTimeout)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := proc.Command(hctx, []string{"/bin/sh", "-c", command})
	cmd.Env = append(os.Environ(), "SAFE_RESTART_SERVICE="+st.Profile.Name, "SAFE_RESTART_PHASE="+phase)
	start := time.Now()
	out, err := proc.RunCombined(cmd)
	run := &verify.HookRun{Phase: phase, Command: command, Took: time.Since(start), Output: out}
	if errors.Is(hctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("timed out after %s", timeout)
	}
	if err != nil {
		run.Error = fmt.Sprintf("%s hook %q: %v", phase, command, err)
		st.Log.Error().Str("phase", phase).Str("command", command).Str("output", strings.TrimSpace(out)).Err(err).Msg("hook failed")
		return run, fmt.Errorf("%s hook %q: %w (output: %q)", phase, command, err, proc.Truncate([]byte(out), 200))
	}
	st.Log.Info().Str("phase", phase).Str("command", command).Str("output", strings.TrimSpace(out)).Dur("took", run.Took).Msg("hook ran")
	return run, nil
}
