//go:build linux && !386 && !s390x

package verify

import "golang.org/x/sys/unix"

// acceptCalls are the numbers of accept(2) and accept4(2) in a task's
// syscall file (see waitsInAccept).
var acceptCalls = []int{unix.SYS_ACCEPT, unix.SYS_ACCEPT4}
