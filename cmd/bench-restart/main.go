//go:build linux

// Command bench-restart measures what a restart costs the clients: a
// prober opens a new connection every few milliseconds and sends one GET,
// counting answers, refusals, resets and other failures, and the longest
// time without a successful answer. It compares, alternating in one run:
// safe-restart restart (graceful, and TERM first), Apache's own graceful
// stop or stop, a wait and a start, its in-place restart (HUP), and kill -9
// of the group then a start.
//
// Each server's table begins with two reference rows measured in the same
// run, against which the restarts' longest gap is judged: the noise floor
// (no restart, a wait under the same load: what the load alone costs the
// prober) and the server's own start (stopped untimed, then timed from the
// exec of its start command to the first answer).
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
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	bin := flag.String("safe-restart", "bin/safe-restart", "the safe-restart binary")
	rounds := flag.Int("rounds", 5, "restarts per method (medians are reported)")
	servers := flag.String("servers", "apache2,nginx,php-fpm", "which servers to benchmark, comma-separated")
	only := flag.String("methods", "", "run only the Apache methods whose name matches this regular expression")
	flag.Parse()
	re, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-restart: -methods:", err)
		os.Exit(2)
	}
	methodFilter = re
	if err := run(*bin, *rounds, strings.Split(*servers, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "bench-restart:", err)
		os.Exit(1)
	}
}

func run(bin string, rounds int, servers []string) error {
	if os.Getpid() != 1 || os.Geteuid() != 0 {
		return errors.New("run as root in fresh namespaces (make bench-restart)")
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	for _, name := range servers {
		var err error
		switch name {
		case "apache2":
			err = runApache(bin, rounds)
		case "nginx", "php-fpm":
			err = runNginxFPM(bin, rounds, name == "php-fpm")
		default:
			err = fmt.Errorf("unknown server %q (apache2, nginx, php-fpm)", name)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// runNginxFPM benchmarks nginx, or php-fpm behind nginx, one method after
// the other (see nginxFPM.methods).
func runNginxFPM(bin string, rounds int, fpm bool) error {
	srv, err := newNginxFPM(bin, fpm)
	if err != nil {
		return err
	}
	defer srv.cleanup()
	if err := srv.waitServing(20 * time.Second); err != nil {
		return err
	}
	name, title := "nginx", "nginx"
	if fpm {
		name, title = "php-fpm", "php-fpm behind nginx (GET /index.php)"
	}
	results := map[string][]result{}
	for _, m := range srv.methods() {
		for r := 0; r < rounds; r++ {
			res, err := measure(srv, m)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", m.name, r+1, err)
			}
			results[m.name] = append(results[m.name], res)
			fmt.Fprintf(os.Stderr, "%s round %d %-40s %s\n", title, r+1, m.name, res)
		}
	}
	return report(name, title, srv.methods(), results)
}

// runApache benchmarks Apache, alternating the methods round by round.
func runApache(bin string, rounds int) error {
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
			res, err := measure(srv, m)
			if err != nil {
				return fmt.Errorf("%s, round %d: %w", m.name, r+1, err)
			}
			results[m.name] = append(results[m.name], res)
			fmt.Fprintf(os.Stderr, "round %d %-24s %s\n", r+1, m.name, res)
		}
	}
	return report("apache2", "apache2", srv.methods(), results)
}

// report prints the table of the medians of each method's rounds, then the
// reference line of server (see printReference).
func report(server, title string, methods []method, results map[string][]result) error {
	fmt.Printf("\n%s: medians of each method's rounds; prober (one new connection every %s) and %d concurrent clients\n", title, probeEvery, clients)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\ttook\tok\trefused\treset\tother failures\tlongest gap without an answer\tclients ok\tclients refused\tclients failed\t")
	for _, m := range methods {
		rs := results[m.name]
		n := func(f func(r result) int) int { return medianInt(rs, f) }
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t\n", m.name, median(rs, func(r result) time.Duration { return r.took }),
			n(func(r result) int { return r.ok }), n(func(r result) int { return r.refused }),
			n(func(r result) int { return r.reset }), n(func(r result) int { return r.other }),
			median(rs, func(r result) time.Duration { return r.gap }),
			n(func(r result) int { return r.clientOK }), n(func(r result) int { return r.clientRefused }), n(func(r result) int { return r.clientFailed }))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printReference(server, results)
	if _, apache := results[gracefulStopWait]; !apache {
		return nil
	}
	took := func(name string) time.Duration {
		return median(results[name], func(r result) time.Duration { return r.took })
	}
	fmt.Printf("\nsafe-restart's overhead over the server's own stop, wait, start (medians of 'took'):\n")
	fmt.Printf("  TERM first (the plain restart):  %s\n", (took(safeRestart) - took(stopWaitStart)).Round(time.Millisecond))
	fmt.Printf("  graceful (WINCH, asked for):     %s\n", (took(safeRestartGrace) - took(gracefulStopWait)).Round(time.Millisecond))
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
