package trial

import "errors"

// ErrFailed reports a new configuration that passed the server's own
// config test but could not run when started in a throwaway sandbox:
// nothing was touched (exit 3).
var ErrFailed = errors.New("the new configuration cannot run")

// ErrCannotBind reports a listen address of the new configuration that
// cannot be bound on this machine (another process holds it, or it is not
// an address of this machine): its start or reload would fail, so nothing
// was touched (exit 3).
var ErrCannotBind = errors.New("a listen address of the new configuration cannot be bound")
