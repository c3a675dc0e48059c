package run

import "errors"

// ErrGaveUp reports a child that crashed MaxRestarts times in a row.
var ErrGaveUp = errors.New("gave up restarting the child")

// ErrStaleRequest reports a request about a generation that no longer runs.
var ErrStaleRequest = errors.New("the generation the request was about no longer runs")
