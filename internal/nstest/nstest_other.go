//go:build !linux

package nstest

import "testing"

// Inside reports whether this process is a child re-executed by
// InPrivateNamespaces; never on this platform.
func Inside() bool { return false }

// InPrivateNamespaces skips the test (fails it with CI=true): private
// namespaces exist only on Linux.
func InPrivateNamespaces(t *testing.T) bool {
	t.Helper()
	skipOrFail(t, "nstest: private namespaces need Linux")
	return false
}
