//go:build linux

// Command bench-restart measures what a restart costs the clients: a
// prober opens a new connection every few milliseconds and sends one GET,
// counting answers, refusals, resets and other failures, and the longest
// time without a successful answer. It compares, alternating in one run:
// safe-restart restart (overlapping the masters with
// net.ipv4.tcp_migrate_req=1; stop and start, graceful and TERM first),
// the same overlap done by hand with tcp_migrate_req 0 and 1, Apache's own
// graceful stop or stop, a wait and a start, its in-place restart (HUP),
// and kill -9 of the group then a start. 50 clients (-clients) keep
// requesting, each on a new connection, beside the prober.
//
// It must run as root in fresh IPC, PID, mount and network namespaces,
// which `make bench-restart` provides; it brings up lo and uses only
// 127.0.0.1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"text/tabwriter"
	"time"
)

func main() {
	bin := flag.String("safe-restart", "bin/safe-restart", "the safe-restart binary")
	rounds := flag.Int("rounds", 5, "restarts per method (medians are reported)")
	flag.IntVar(&clients, "clients", clients, "concurrent clients besides the prober")
	only := flag.String("methods", "", "run only the methods whose name matches this regular expression")
	flag.Parse()
	re, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-restart: -methods:", err)
		os.Exit(2)
	}
	methodFilter = re
	if err := run(*bin, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench-restart:", err)
		os.Exit(1)
	}
}

func run(bin string, rounds int) error {
	if os.Getpid() != 1 || os.Geteuid() != 0 {
		return errors.New("run as root in fresh namespaces (make bench-restart)")
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	srv, err := newServer(bin)
	if err != nil {
		return err
	}
	defer srv.cleanup()
	if err := srv.apache("-k", "start"); err != nil {
		return err
	}
	if err := srv.waitServing(20 * time.Second); err != nil {
		log, _ := os.ReadFile(srv.dir + "/error.log")
		return fmt.Errorf("%w; error log:\n%s", err, log)
	}
	results := map[string][]result{}
	for r := 0; r < rounds; r++ {
		for _, m := range srv.methods() {
			res, err := measure(srv, m.do)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", m.name, r+1, err)
			}
			results[m.name] = append(results[m.name], res)
			fmt.Fprintf(os.Stderr, "round %d %-24s %s\n", r+1, m.name, res)
		}
	}
	return report(srv.methods(), results)
}

func report(methods []method, results map[string][]result) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\ttook\tok\trefused\treset\tother failures\tlongest gap without an answer\tclients ok\tclients failed\t")
	for _, m := range methods {
		rs := results[m.name]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t\n", m.name, median(rs, func(r result) time.Duration { return r.took }),
			medianInt(rs, func(r result) int { return r.ok }), medianInt(rs, func(r result) int { return r.refused }),
			medianInt(rs, func(r result) int { return r.reset }), medianInt(rs, func(r result) int { return r.other }),
			median(rs, func(r result) time.Duration { return r.gap }),
			medianInt(rs, func(r result) int { return r.loadOK }), medianInt(rs, func(r result) int { return r.loadFailed }))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	took := func(name string) time.Duration {
		return median(results[name], func(r result) time.Duration { return r.took })
	}
	for _, pair := range [][3]string{{"graceful (WINCH):", safeRestart, gracefulStopWait}, {"TERM first:", safeRestartFast, stopWaitStart}} {
		if len(results[pair[1]]) == 0 || len(results[pair[2]]) == 0 {
			continue
		}
		fmt.Printf("safe-restart's overhead over the server's own stop, wait, start (medians of 'took'), %-18s %s\n",
			pair[0], (took(pair[1]) - took(pair[2])).Round(time.Millisecond))
	}
	return nil
}

func median(rs []result, f func(result) time.Duration) time.Duration {
	v := make([]time.Duration, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2].Round(time.Millisecond)
}

func medianInt(rs []result, f func(result) int) int {
	v := make([]int, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}
