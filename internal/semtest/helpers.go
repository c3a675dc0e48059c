//go:build linux

package semtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Helper commands: the test binary re-executed as a small program that
// creates or operates SysV sets, then exits or waits to be killed (the
// stdlib os/exec helper-command pattern). A test package that uses them
// calls RunHelper first thing in its TestMain.
const helperEnv = "SEMTEST_HELPER"

// RunHelper runs the helper named in the environment and exits; it returns
// at once in a normal test process.
//
//	make-sets "N UID VAL [KEY NSEMS]": create N sets (Apache's shape by default), print their ids, exit
//	hold ID: lock and unlock the set (as an APR mutex does), say "ready", block until killed
//	wait ID: block in semop on the set (value 0), counted by GETNCNT
//	op ID:   lock and unlock the set, exit
//	make-shm SIZE: create a private SysV shm segment, print its id, exit
//	make-msg N: create a private message queue holding N messages, print its id, exit
func RunHelper() {
	name := os.Getenv(helperEnv)
	if name == "" {
		return
	}
	if err := runHelper(name, os.Args[len(os.Args)-1]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runHelper(name, arg string) error {
	switch name {
	case "make-sets":
		return makeSets(arg)
	case "make-shm":
		return makeShm(arg)
	case "make-msg":
		return makeMsg(arg)
	}
	id, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	switch name {
	case "hold", "op":
		if err := lockUnlock(id); err != nil || name == "op" {
			return err
		}
		fmt.Println("ready")
		os.Stdout.Close()
		_, _ = io.Copy(io.Discard, os.Stdin) // until killed
		return nil
	case "wait":
		return Op(id, 0, -1)
	}
	return fmt.Errorf("unknown helper %q", name)
}

func lockUnlock(id int) error {
	if err := Op(id, 0, -1); err != nil {
		return err
	}
	return Op(id, 0, 1)
}

func makeSets(arg string) error {
	var n, val int
	var uid uint32
	var key int32
	nsems := 1
	if _, err := fmt.Sscan(arg, &n, &uid, &val, &key, &nsems); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	for i := 0; i < n; i++ {
		id, err := Create(key, nsems, 0o600, uid, uid, val)
		if err != nil {
			return err
		}
		fmt.Println(id)
	}
	return nil
}

func makeShm(arg string) error {
	size, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	id, err := unix.SysvShmGet(0, size, ipcCreat|0o600)
	if err != nil {
		return os.NewSyscallError("shmget", err)
	}
	fmt.Println(id)
	return nil
}

func makeMsg(arg string) error {
	n, err := strconv.Atoi(arg)
	if err != nil {
		return err
	}
	id, _, errno := unix.Syscall(unix.SYS_MSGGET, 0, ipcCreat|0o600, 0)
	if errno != 0 {
		return os.NewSyscallError("msgget", errno)
	}
	msg := struct {
		mtype int64
		text  [8]byte
	}{mtype: 1}
	for i := 0; i < n; i++ {
		if _, _, errno := unix.Syscall6(unix.SYS_MSGSND, id, uintptr(unsafe.Pointer(&msg)), 8, 0, 0, 0); errno != 0 {
			return os.NewSyscallError("msgsnd", errno)
		}
	}
	fmt.Println(id)
	return nil
}

// Command returns the test binary as helper name with arg, without the
// nstest markers (a helper must not set up namespaces again).
func Command(name, arg string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$", arg)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SAFE_RESTART_NSTEST") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, helperEnv+"="+name)
	return cmd
}

// DeadSets creates sets in a helper that then exits, so that their
// last-operation pid is dead. args as for make-sets.
func DeadSets(t testing.TB, args string) []int {
	t.Helper()
	return Made(t, "make-sets", args)
}

// Made runs a make-* helper (which exits) and returns the ids it printed.
func Made(t testing.TB, helper, args string) []int {
	t.Helper()
	out, err := Command(helper, args).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", helper, args, err)
	}
	var ids []int
	for _, f := range strings.Fields(string(out)) {
		id, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s %s: %q", helper, args, f)
		}
		ids = append(ids, id)
	}
	return ids
}

// Holder starts a live process that has operated on set id, and returns
// once it has; it is killed at cleanup.
func Holder(t testing.TB, id int) *exec.Cmd {
	t.Helper()
	cmd := Command("hold", strconv.Itoa(id))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
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

// Waiter starts a process blocked in semop on set id (whose value must be
// 0); it is killed at cleanup. The caller waits for GETNCNT to show it.
func Waiter(t testing.TB, id int) {
	t.Helper()
	cmd := Command("wait", strconv.Itoa(id))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// Operate locks and unlocks set id from a process that then exits.
func Operate(t testing.TB, id int) {
	t.Helper()
	if out, err := Command("op", strconv.Itoa(id)).CombinedOutput(); err != nil {
		t.Fatalf("op %d: %v\n%s", id, err, out)
	}
}
