package ipcguard

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/semtest"
)

// Helper commands: the test binary re-executed as a small program that
// creates or operates SysV sets and then exits or waits to be killed
// (the stdlib os/exec helper-command pattern).
const helperEnv = "IPCGUARD_TEST_HELPER"

func TestMain(m *testing.M) {
	if name := os.Getenv(helperEnv); name != "" {
		os.Exit(runHelper(name, os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

// runHelper runs one helper; arg is its single argument.
//
//	make-sets "N UID VAL [KEY NSEMS]": create N sets (Apache's shape by default), print their ids, exit
//	hold ID:  lock and unlock the set (as an APR mutex does), say "ready", block until killed
//	wait ID:  block in semop on the set (value 0), counted by GETNCNT
//	op ID:    lock and unlock the set, exit
func runHelper(name, arg string) int {
	var err error
	switch name {
	case "make-sets":
		err = makeSets(arg)
	case "hold", "op":
		id, _ := strconv.Atoi(arg)
		if err = semtest.Op(id, 0, -1); err == nil {
			err = semtest.Op(id, 0, 1)
		}
		if err == nil && name == "hold" {
			fmt.Println("ready")
			os.Stdout.Close()
			_, _ = io.Copy(io.Discard, os.Stdin) // until killed
		}
	case "wait":
		id, _ := strconv.Atoi(arg)
		err = semtest.Op(id, 0, -1)
	default:
		err = fmt.Errorf("unknown helper %q", name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func makeSets(arg string) error {
	var n, val, nsems int
	var uid uint32
	var key int32
	nsems = 1
	if _, err := fmt.Sscan(arg, &n, &uid, &val, &key, &nsems); err != nil && err != io.EOF {
		return err
	}
	for i := 0; i < n; i++ {
		id, err := semtest.Create(key, nsems, 0o600, uid, uid, val)
		if err != nil {
			return err
		}
		fmt.Println(id)
	}
	return nil
}

// helperCmd returns the test binary as helper name with arg, without the
// nstest markers (the helper must not set up namespaces again).
func helperCmd(name, arg string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$", arg)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAFE_RESTART_NSTEST") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"="+name)
	return cmd
}

// makeDeadSets creates sets in a helper that then exits, so their
// last-operation pid is dead. args as for the make-sets helper.
func makeDeadSets(t *testing.T, args string) []int {
	t.Helper()
	out, err := helperCmd("make-sets", args).Output()
	if err != nil {
		t.Fatalf("make-sets %s: %v", args, err)
	}
	var ids []int
	for _, f := range strings.Fields(string(out)) {
		id, _ := strconv.Atoi(f)
		ids = append(ids, id)
	}
	return ids
}

// startHolder starts a live process that has operated on set id, and
// returns once it has (it closes its stdout when ready).
func startHolder(t *testing.T, id int) *exec.Cmd {
	t.Helper()
	cmd := helperCmd("hold", strconv.Itoa(id))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = stdin.Close(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("holder of set %d: %q, %v", id, line, err)
	}
	return cmd
}

// waitFor polls cond every few milliseconds until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
