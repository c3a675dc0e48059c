package proc

import "testing"

func TestExitStatus(t *testing.T) {
	tests := []struct {
		st   ExitStatus
		code int
		text string
	}{
		{ExitStatus{Code: 3}, 3, "exit code 3"},
		{ExitStatus{Code: -1, Signal: 9}, 137, "killed by SIGKILL"},
		{ExitStatus{Code: -1, Signal: 9, OOMKilled: true}, 137, "killed by the OOM killer (SIGKILL)"},
		{ExitStatus{Code: -1, Signal: 11, CoreDumped: true}, 139, "killed by SIGSEGV (core dumped)"},
	}
	for _, tt := range tests {
		if tt.st.ExitCode() != tt.code || tt.st.String() != tt.text {
			t.Errorf("%+v: %d %q, want %d %q", tt.st, tt.st.ExitCode(), tt.st.String(), tt.code, tt.text)
		}
	}
}
