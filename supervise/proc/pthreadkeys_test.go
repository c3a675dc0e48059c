package proc

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// keyHog creates n pthread keys, says "ready", and waits for stdin to close.
const keyHog = `#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
	int n = atoi(argv[1]);
	for (int i = 0; i < n; i++) { pthread_key_t k; if (pthread_key_create(&k, 0)) return 2; }
	printf("ready\n"); fflush(stdout);
	return getchar() == EOF ? 0 : 0;
}`

// TestPthreadKeysInUse reads the key table of real processes: a C program
// that created 100 keys more than another reads as exactly 100 more.
func TestPthreadKeysInUse(t *testing.T) {
	nstest.RequireBinaries(t, "cc")
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "keyhog.c"), filepath.Join(dir, "keyhog")
	if err := os.WriteFile(src, []byte(keyHog), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cc", "-o", bin, src, "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	count := func(n int) int {
		cmd := exec.Command(bin, strconv.Itoa(n))
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { stdin.Close(); _ = cmd.Wait() }()
		if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("keyhog: %q, %v", line, err)
		}
		used, err := PthreadKeysInUse("/proc", cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		return used
	}
	base, more := count(1), count(101)
	if more-base != 100 {
		t.Fatalf("keys in use: %d with 1 created, %d with 101; want 100 more", base, more)
	}
	if _, err := PthreadKeysInUse("/proc", 1<<30); !errors.Is(err, ErrNoKeyTable) {
		t.Fatalf("missing pid: %v, want ErrNoKeyTable", err)
	}
}
