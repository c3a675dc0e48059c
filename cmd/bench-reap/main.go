//go:build linux

// Command bench-reap times `safe-restart ipc reap` against the clean-up
// one-liner operators use (ipcs | awk | ipcrm, one ipcrm per set), on N
// leaked Apache-signature semaphore sets plus a few live ones, in one run.
//
// It must run as root in a fresh IPC and PID namespace, which `make
// bench-reap` provides (unshare --ipc --pid --mount --fork --mount-proc). It
// refuses to start if any semaphore set already exists.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

const (
	wwwData  = 33 // Debian's www-data, Apache's User
	oneLiner = `ipcs -s | awk '/www-data/ {print $2}' | while read -r id; do ipcrm -s "$id"; done`
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-helper" {
		os.Exit(helper(os.Args[2], os.Args[3:]))
	}
	sizes := flag.String("n", "1000,10000,32000", "comma-separated numbers of leaked sets")
	live := flag.Int("live", 4, "live sets held by a running process")
	rounds := flag.Int("rounds", 5, "rounds of safe-restart per size (the median is reported)")
	bin := flag.String("safe-restart", "bin/safe-restart", "the safe-restart binary")
	flag.Parse()
	if err := run(*bin, *sizes, *live, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench-reap:", err)
		os.Exit(1)
	}
}

func run(bin, sizes string, live, rounds int) error {
	if err := preflight(); err != nil {
		return err
	}
	if rounds < 1 {
		return errors.New("-rounds must be at least 1")
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "leaked sets\tsafe-restart (median of %d, min-max)\tbare IPC_RMID loop\tone-liner\tone-liner / safe-restart\tlive sets removed in a round (safe-restart, worst / bare / one-liner)\t\n", rounds)
	var rows []string
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 || n+live > 32768 {
			return fmt.Errorf("bad size %q (1..%d)", f, 32768-live)
		}
		if err := setSEMMNI(n + live); err != nil {
			return err
		}
		var times []time.Duration
		oursLive := 0
		for r := 0; r < rounds; r++ {
			took, removedLive, err := round(n, live, func() error { return reapWith(bin) })
			if err != nil {
				return fmt.Errorf("safe-restart, %d sets: %w", n, err)
			}
			times, oursLive = append(times, took), max(oursLive, removedLive)
		}
		slices.Sort(times)
		ours := times[len(times)/2]
		fmt.Fprintf(os.Stderr, "%d sets: safe-restart done, running the one-liner (about 1 ms a set)\n", n)
		bare, bareLive, err := round(n, live, func() error { return self("bare").Run() })
		if err != nil {
			return fmt.Errorf("bare loop, %d sets: %w", n, err)
		}
		naive, naiveLive, err := round(n, live, func() error { return exec.Command("bash", "-c", oneLiner).Run() })
		if err != nil {
			return fmt.Errorf("one-liner, %d sets: %w", n, err)
		}
		rows = append(rows, fmt.Sprintf("%d\t%.3f s (%.3f-%.3f)\t%.3f s\t%.3f s\t%.0fx\t%d / %d / %d\t", n, ours.Seconds(),
			times[0].Seconds(), times[len(times)-1].Seconds(), bare.Seconds(), naive.Seconds(), naive.Seconds()/ours.Seconds(),
			oursLive, bareLive, naiveLive))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, r)
	}
	return tw.Flush()
}

// preflight refuses to run anywhere but a fresh namespace of our own.
func preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("run as root (make bench-reap)")
	}
	data, err := os.ReadFile("/proc/sysvipc/sem")
	if err != nil {
		return err
	}
	if bytes.Count(data, []byte("\n")) > 1 || os.Getpid() != 1 {
		return errors.New("run in a fresh IPC and PID namespace (make bench-reap): semaphore sets exist here, or this is not PID 1")
	}
	return nil
}

func setSEMMNI(n int) error {
	return os.WriteFile("/proc/sys/kernel/sem", []byte(fmt.Sprintf("32000 1024000000 500 %d\n", max(n, 32000))), 0o644)
}

// round leaks n sets, starts a process holding live more, times clean, and
// reports how many live sets clean removed. Every set is gone afterwards.
func round(n, live int, clean func() error) (time.Duration, int, error) {
	if err := self("make-sets", strconv.Itoa(n)).Run(); err != nil {
		return 0, 0, fmt.Errorf("leak %d sets: %w", n, err)
	}
	holder, ids, err := startHolder(live)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	start := time.Now()
	if err := clean(); err != nil {
		return 0, 0, err
	}
	took := time.Since(start)
	left, err := semIDs()
	if err != nil {
		return 0, 0, err
	}
	removedLive := 0
	for _, id := range ids {
		if !left[id] {
			removedLive++
		}
	}
	if len(left) != live-removedLive {
		return 0, 0, fmt.Errorf("%d sets left, want only the %d live ones", len(left), live-removedLive)
	}
	return took, removedLive, removeAll(left)
}

func reapWith(bin string) error {
	cmd := exec.Command(bin, "ipc", "reap", "--service", "apache2", "--yes", "--log-format", "json")
	log, err := os.CreateTemp("", "bench-reap-*.log")
	if err != nil {
		return err
	}
	defer os.Remove(log.Name())
	defer log.Close()
	cmd.Stderr, cmd.Stdout = log, io.Discard
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w (log: %s)", strings.Join(cmd.Args, " "), err, log.Name())
	}
	return nil
}

func self(args ...string) *exec.Cmd {
	return exec.Command(os.Args[0], append([]string{"-helper"}, args...)...)
}

// startHolder starts a process that creates live sets with Apache's shape,
// locks and unlocks each (as an APR mutex does), and stays alive.
func startHolder(n int) (*exec.Cmd, []int, error) {
	cmd := self("hold", strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	// The holder waits for EOF on stdin; the pipe stays open until Kill.
	if _, err := cmd.StdinPipe(); err != nil {
		return nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	var ids []int
	sc := bufio.NewScanner(out)
	for len(ids) < n && sc.Scan() {
		id, err := strconv.Atoi(sc.Text())
		if err != nil {
			break
		}
		ids = append(ids, id)
	}
	if len(ids) != n {
		_ = cmd.Process.Kill()
		return nil, nil, fmt.Errorf("holder reported %d sets, want %d", len(ids), n)
	}
	return cmd, ids, nil
}
