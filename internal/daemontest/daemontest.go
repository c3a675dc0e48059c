// Package daemontest is a small real daemon for tests, run by the test
// binary itself in a helper mode: what a service file describes when no
// built-in profile fits. It behaves like a classic Unix daemon:
//
//   - `start` checks the configuration, starts `serve` in its own session
//     (stdio on /dev/null), waits until the pidfile names it, and exits 0
//     (1 with the reason when the configuration is bad or serve died);
//   - `serve` listens on the configuration's address, writes the pidfile,
//     and answers every HTTP request with 200 "generation N";
//   - HUP re-reads the configuration and logs "[pid P] reloaded generation
//     N" once the new generation serves (after reload_delay); a
//     configuration holding "crash" makes it exit 3 instead, one holding
//     "reject" makes it log "[pid P] refused the new configuration" and
//     keep the old one;
//   - QUIT drains the requests in flight and exits (ignored with
//     -ignore-quit, to make a stop ladder escalate); TERM exits at once;
//     both remove the pidfile;
//   - `check` exits 0 when the configuration is good, 1 when it has a line
//     "invalid" or one it does not know.
//
// The configuration is lines of "key value": listen ADDR, generation N,
// reload_delay DURATION, and the bare words crash, reject and invalid.
//
// Usage, in TestMain before m.Run:
//
//	daemontest.Run()
//
// and in a service file's start: ["/usr/bin/env", daemontest.Env+"=start",
// os.Executable(), "-conf", "{conf}", "-pidfile", PATH, "-log", PATH].
package daemontest

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Env selects the helper mode: start, serve or check.
const Env = "SAFE_RESTART_TEST_DAEMON"

// Run runs the helper mode Env names and exits; it returns at once when
// Env is not set.
func Run() {
	mode := os.Getenv(Env)
	if mode == "" {
		return
	}
	var o options
	fs := flag.NewFlagSet(mode, flag.ExitOnError)
	fs.StringVar(&o.conf, "conf", "", "configuration file")
	fs.StringVar(&o.pidFile, "pidfile", "", "pidfile to write")
	fs.StringVar(&o.logFile, "log", "", "log file")
	fs.BoolVar(&o.ignoreQuit, "ignore-quit", false, "ignore QUIT")
	_ = fs.Parse(os.Args[1:])
	var err error
	switch mode {
	case "check":
		_, err = readConfig(o.conf)
	case "start":
		err = start(o)
	case "serve":
		err = serve(o)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "daemontest %s: %v\n", mode, err)
		os.Exit(1)
	}
	os.Exit(0)
}

type options struct {
	conf, pidFile, logFile string
	ignoreQuit             bool
}

// config is what the configuration file says.
type config struct {
	listen      string
	generation  int
	reloadDelay time.Duration
	crash       bool
	reject      bool
}

// readConfig parses the configuration; "invalid" or an unknown line is an
// error.
func readConfig(path string) (config, error) {
	f, err := os.Open(path)
	if err != nil {
		return config{}, err
	}
	defer f.Close()
	c := config{generation: 1}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		key, val, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch key {
		case "":
		case "listen":
			c.listen = val
		case "generation":
			c.generation, err = strconv.Atoi(val)
		case "reload_delay":
			c.reloadDelay, err = time.ParseDuration(val)
		case "crash":
			c.crash = true
		case "reject":
			c.reject = true
		default:
			err = errors.New("unknown directive")
		}
		if err != nil {
			return c, fmt.Errorf("%s line %d %q: %w", path, n, sc.Text(), err)
		}
	}
	if c.listen == "" {
		return c, fmt.Errorf("%s: no listen line", path)
	}
	return c, sc.Err()
}

// start starts serve detached and waits until it wrote the pidfile.
func start(o options) error {
	if _, err := readConfig(o.conf); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"-conf", o.conf, "-pidfile", o.pidFile, "-log", o.logFile}
	if o.ignoreQuit {
		args = append(args, "-ignore-quit")
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), Env+"=serve")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil { // stdio: /dev/null
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	want := strconv.Itoa(cmd.Process.Pid)
	deadline := time.After(20 * time.Second)
	for {
		if data, err := os.ReadFile(o.pidFile); err == nil && strings.TrimSpace(string(data)) == want {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("serve exited before writing its pidfile: %v", err)
		case <-deadline:
			return errors.New("serve wrote no pidfile in 20s")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// daemon is the serving process.
type daemon struct {
	o          options
	log        *os.File
	generation atomic.Int64
}

func (d *daemon) logf(format string, a ...any) {
	fmt.Fprintf(d.log, "%s [pid %d] %s\n", time.Now().Format(time.RFC3339Nano), os.Getpid(), fmt.Sprintf(format, a...))
}

// serve listens, writes the pidfile and serves until QUIT or TERM.
func serve(o options) error {
	c, err := readConfig(o.conf)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(o.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	d := &daemon{o: o, log: logf}
	d.generation.Store(int64(c.generation))
	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		d.logf("FATAL cannot listen: %v", err)
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "generation %d\n", d.generation.Load())
	})}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGTERM)
	go func() { _ = srv.Serve(ln) }()
	if err := writePIDFile(o.pidFile); err != nil {
		return err
	}
	d.logf("started generation %d on %s", c.generation, ln.Addr())
	return d.loop(sigs, srv)
}

// loop handles signals until the daemon exits.
func (d *daemon) loop(sigs <-chan os.Signal, srv *http.Server) error {
	for sig := range sigs {
		switch sig {
		case syscall.SIGHUP:
			d.reload()
		case syscall.SIGQUIT:
			if d.o.ignoreQuit {
				d.logf("ignoring QUIT")
				continue
			}
			d.logf("draining")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := srv.Shutdown(ctx)
			cancel()
			return d.exit(err)
		case syscall.SIGTERM:
			d.logf("terminating")
			return d.exit(srv.Close())
		}
	}
	return nil
}

// reload re-reads the configuration: a new generation, a refusal, or a
// crash, as it says.
func (d *daemon) reload() {
	c, err := readConfig(d.o.conf)
	switch {
	case err != nil || c.reject:
		d.logf("refused the new configuration (%v), generation %d serves", err, d.generation.Load())
	case c.crash:
		d.logf("crashing as the configuration asks")
		os.Exit(3) // the pidfile stays, as after a real crash
	default:
		time.Sleep(c.reloadDelay)
		d.generation.Store(int64(c.generation))
		d.logf("reloaded generation %d", c.generation)
	}
}

func (d *daemon) exit(err error) error {
	d.logf("exiting")
	if rmErr := os.Remove(d.o.pidFile); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// writePIDFile writes the pid through a rename, so that no reader sees it
// half written.
func writePIDFile(path string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
