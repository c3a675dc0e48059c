//go:build linux

// Command bench-restart measures what a restart costs the clients: a
// prober opens a new connection every 2 ms and sends one GET, counting
// answers, refusals, resets and other failures, and the longest time
// without a successful answer, while 50 keep-alive clients send requests on
// kept connections (counting the kept connections the server closes). It
// compares, round by round in one run: safe-restart restart (the overlap
// or handoff, first of a stock master and second; --no-overlap), the
// server's own ways (Apache: the overlap by hand, graceful stop or stop, a
// wait and a start, HUP in place, kill -9 of the group then a start; nginx:
// USR2 then QUIT; php-fpm: USR2), and prints safe-restart's overhead over
// the server's own method. Every row starts from a stock server (started by
// its own start command, net.ipv4.tcp_migrate_req=0), brought there
// unprobed and untimed; Apache runs with prefork and with event (-mpms).
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
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/safe-restart/safe-restart/internal/prober"
	"github.com/safe-restart/safe-restart/supervise/verify"
)

func main() {
	bin := flag.String("safe-restart", "bin/safe-restart", "the safe-restart binary")
	rounds := flag.Int("rounds", 5, "restarts per method (medians are reported)")
	servers := flag.String("servers", "apache2,nginx,php-fpm", "which servers to benchmark, comma-separated")
	mpms := flag.String("mpms", "prefork,event", "which Apache MPMs to benchmark, comma-separated")
	only := flag.String("methods", "", "run only the methods whose name matches this regular expression")
	flag.StringVar(&logDir, "logs", "", "append every safe-restart run's log (JSON lines, timed) to DIR/SERVICE.log")
	probe := flag.String("probe", "", "only probe HOST:PORT[/PATH] (GET, / by default) as the benchmark does, until SIGTERM or SIGINT, and print what it saw")
	flag.Parse()
	if *probe != "" {
		probeOnly(*probe)
		return
	}
	re, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-restart: -methods:", err)
		os.Exit(2)
	}
	methodFilter = re
	apacheMPMs = strings.Split(*mpms, ",")
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
			for _, mpm := range apacheMPMs {
				if err = runApache(bin, rounds, mpm); err != nil {
					break
				}
			}
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

// apacheMPMs are the MPMs runApache is run with (-mpms).
var apacheMPMs []string

// runApache benchmarks Apache with mpm, alternating the methods round by
// round.
func runApache(bin string, rounds int, mpm string) error {
	srv, err := newServer(bin, mpm)
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
				log, _ := os.ReadFile(srv.dir + "/error.log")
				return fmt.Errorf("%s, %s, round %d: %w; error log:\n%s", mpm, m.name, r+1, err, lastLines(string(log), 20))
			}
			results[m.name] = append(results[m.name], res)
			fmt.Fprintf(os.Stderr, "%s round %d %-24s %s\n", mpm, r+1, m.name, res)
		}
	}
	return report("apache2", "apache2 ("+mpm+")", srv.methods(), results)
}

// methodFilter selects the methods to run (-methods).
var methodFilter = regexp.MustCompile("")

// selected are the methods of ms that -methods selects.
func selected(ms []method) []method {
	var out []method
	for _, m := range ms {
		if methodFilter.MatchString(m.name) {
			out = append(out, m)
		}
	}
	return out
}

// logDir, if set (-logs), keeps every safe-restart run's log.
var logDir string

// runSafeRestart runs safe-restart restart of service with conf, stateDir
// and flags, and keeps its receipt (lastReceipt); with -logs it appends
// the run's log to logDir/SERVICE.log behind a line naming the command.
func runSafeRestart(bin, service, conf, stateDir string, flags ...string) error {
	args := append([]string{"--log-format", "json", "restart", service, "--conf", conf, "--state-dir", stateDir, "--json"}, flags...)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if logDir != "" {
		if f, ferr := os.OpenFile(filepath.Join(logDir, service+".log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); ferr == nil {
			fmt.Fprintf(f, "# %s %s\n%s%s\n", bin, strings.Join(args, " "), stderr.Bytes(), stdout.Bytes())
			f.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("%v: %s%s", err, stderr.Bytes(), stdout.Bytes())
	}
	var rep struct {
		Receipt *verify.Receipt `json:"receipt"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return fmt.Errorf("safe-restart --json: %w: %s", err, stdout.Bytes())
	}
	lastReceipt = rep.Receipt
	return nil
}

// lastReceipt is the receipt of the last safe-restart run (nil for a
// method that is not safe-restart's); measure takes it into its result.
var lastReceipt *verify.Receipt

// lastLines returns the last n lines of text.
func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// report prints the table of the medians of each method's rounds, then the
// reference line of server (see printReference).
func report(server, title string, methods []method, results map[string][]result) error {
	fmt.Printf("\n%s: medians of each method's rounds; prober (one new connection every %s) and %d concurrent clients\n", title, prober.Every, clients)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\ttook\tok\trefused\treset\tother failures\tlongest gap without an answer\tclients ok\tclients refused\tclients failed\tkept connections closed\tclosed per client (max)\t")
	for _, m := range methods {
		rs := results[m.name]
		n := func(f func(r result) int) int { return medianInt(rs, f) }
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t\n", m.name, median(rs, func(r result) time.Duration { return r.took }),
			n(func(r result) int { return r.ok }), n(func(r result) int { return r.refused }),
			n(func(r result) int { return r.reset }), n(func(r result) int { return r.other }),
			median(rs, func(r result) time.Duration { return r.gap }),
			n(func(r result) int { return r.clientOK }), n(func(r result) int { return r.clientRefused }), n(func(r result) int { return r.clientFailed }),
			n(func(r result) int { return r.clientClosed }), maxInt(rs, func(r result) int { return r.clientClosedMax }))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if err := printReceipts(methods, results); err != nil {
		return err
	}
	printReference(server, results)
	printOverhead(results)
	return nil
}

// printReceipts prints, for safe-restart's methods, the medians of what its
// own receipt said beside what the prober saw in the same rounds (the
// receipt covers the operation only, the prober 200 ms more on each side).
func printReceipts(methods []method, results map[string][]result) error {
	fmt.Printf("\nsafe-restart's receipt beside the prober, same rounds (medians):\n")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\treceipt: answered\trefused\treset\tfailed\tlongest gap\tprober: ok\trefused\treset\tother\tlongest gap\t")
	for _, m := range methods {
		var rs []result
		for _, r := range results[m.name] {
			if r.receipt != nil {
				rs = append(rs, r)
			}
		}
		if len(rs) == 0 {
			continue
		}
		n := func(f func(r result) int) int { return medianInt(rs, f) }
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t\n", m.name,
			n(func(r result) int { return r.receipt.Answered }), n(func(r result) int { return r.receipt.Refused }),
			n(func(r result) int { return r.receipt.Reset }), n(func(r result) int { return r.receipt.Failed }),
			median(rs, func(r result) time.Duration { return r.receipt.LongestGap }),
			n(func(r result) int { return r.ok }), n(func(r result) int { return r.refused }),
			n(func(r result) int { return r.reset }), n(func(r result) int { return r.other }),
			median(rs, func(r result) time.Duration { return r.gap }))
	}
	return tw.Flush()
}

// overheads are the pairs printOverhead compares: safe-restart's row and
// the server's own method it replaces.
var overheads = []struct{ what, ours, theirs string }{
	{"Apache, first restart, against the overlap by hand (tcp_migrate_req=1)", safeRestartFirst, overlapMigrate},
	{"Apache, second restart, against the overlap by hand (tcp_migrate_req=1)", safeRestartSecond, overlapMigrate},
	{"Apache, --no-overlap (TERM first), against -k stop, wait, -k start", apacheNoOverlap, stopWaitStart},
	{"Apache, --no-overlap --graceful-timeout, against -k graceful-stop, wait, -k start", apacheNoOverlapWait, gracefulStopWait},
	{"nginx, first restart, against USR2 then QUIT", safeRestartFirst, nginxUSR2},
	{"nginx, second restart, against USR2 then QUIT", safeRestartSecond, nginxUSR2},
	{"php-fpm, first restart, against its USR2", safeRestartFirst, fpmUSR2},
	{"php-fpm, second restart, against its USR2", safeRestartSecond, fpmUSR2},
}

// printOverhead prints, for each pair of overheads that ran, the
// difference of the medians of 'took'.
func printOverhead(results map[string][]result) {
	took := func(name string) time.Duration {
		return median(results[name], func(r result) time.Duration { return r.took })
	}
	header := false
	for _, o := range overheads {
		if len(results[o.ours]) == 0 || len(results[o.theirs]) == 0 {
			continue
		}
		if !header {
			fmt.Printf("\nsafe-restart's overhead over the server's own method (difference of the medians of 'took'):\n")
			header = true
		}
		fmt.Printf("  %-80s %s\n", o.what+":", (took(o.ours) - took(o.theirs)).Round(time.Millisecond))
	}
}

func maxInt(rs []result, f func(result) int) int {
	m := 0
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
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
