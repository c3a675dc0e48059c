//go:build !linux || 386 || s390x

package verify

// acceptCalls is empty where the accept calls are not told apart (no
// syscall files; 386 and s390x reach accept through socketcall(2)): the
// generation proof relies on its probes alone (see waitsInAccept).
var acceptCalls []int
