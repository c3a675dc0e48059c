//go:build linux

// Command bench-trial measures what the trial start costs (the start of
// the new configuration in throwaway namespaces that safe-restart runs
// before a reload or restart touches Apache). In one run, alternating
// round by round, it times safe-restart reload and restart with the trial
// and with --no-trial, Apache's own config test alone, and the naive
// reload (apache2ctl graceful's -t then USR1, unverified), on an Apache
// with the event MPM and mod_ssl serving 127.0.0.1; it reports the medians,
// the trial's own time (from --json) and the ratio to the same command
// without it.
//
// It must run as root in fresh IPC, PID, mount and network namespaces,
// which `make bench-trial` provides.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

func main() {
	bin := flag.String("safe-restart", "bin/safe-restart", "the safe-restart binary")
	rounds := flag.Int("rounds", 7, "runs of each command (medians are reported)")
	flag.Parse()
	if err := run(*bin, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench-trial:", err)
		os.Exit(1)
	}
}

// command is one timed command; trial says whether its report has a trial.
type command struct {
	name  string
	argv  []string
	trial bool
}

func run(bin string, rounds int) error {
	if os.Getpid() != 1 || os.Geteuid() != 0 {
		return errors.New("run as root in fresh namespaces (make bench-trial)")
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("ip link set lo up: %v: %s", err, out)
	}
	dir, err := setup()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "httpd.conf")
	common := []string{"--conf", conf, "--state-dir", filepath.Join(dir, "state"), "--json"}
	sr := func(args ...string) []string { return append(append([]string{bin}, args...), common...) }
	if _, _, err := timed(sr("start", "apache2")); err != nil {
		return err
	}
	defer exec.Command(bin, append([]string{"stop", "apache2", "--graceful-timeout", "0"}, common...)...).Run()
	cmds := []command{
		{"apache2 -t (the config test alone)", []string{"/usr/sbin/apache2", "-f", conf, "-t"}, false},
		// The naive method: apache2ctl graceful's config test and USR1, which
		// returns once the signal is sent (nothing verified).
		{"apache2 -t && apache2 -k graceful", []string{"/bin/sh", "-c", `/usr/sbin/apache2 -f "$0" -t && /usr/sbin/apache2 -f "$0" -k graceful`, conf}, false},
		{"safe-restart reload", sr("reload", "apache2"), true},
		{"safe-restart reload --no-trial", sr("reload", "apache2", "--no-trial"), false},
		{"safe-restart restart", sr("restart", "apache2", "--graceful-timeout", "0"), true},
		{"safe-restart restart --no-trial", sr("restart", "apache2", "--graceful-timeout", "0", "--no-trial"), false},
	}
	took, trial := map[string][]time.Duration{}, map[string][]time.Duration{}
	for r := 0; r < rounds; r++ {
		for _, c := range cmds {
			d, t, err := timed(c.argv)
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			took[c.name] = append(took[c.name], d)
			if c.trial {
				trial[c.name] = append(trial[c.name], t)
			}
			fmt.Fprintf(os.Stderr, "round %d %-40s %s\n", r+1, c.name, d.Round(time.Millisecond))
		}
	}
	return report(cmds, took, trial, rounds)
}

// timed runs argv and returns its wall time and, from its JSON report,
// the trial's own elapsed time.
func timed(argv []string) (time.Duration, time.Duration, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	out, err := cmd.Output()
	took := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %w\n%s", argv, err, stderr.String())
	}
	var rep struct {
		Trial *struct {
			Elapsed time.Duration `json:"elapsed"`
		} `json:"trial"`
	}
	if json.Unmarshal(out, &rep) == nil && rep.Trial != nil {
		return took, rep.Trial.Elapsed, nil
	}
	return took, 0, nil
}

func report(cmds []command, took, trial map[string][]time.Duration, rounds int) error {
	fmt.Printf("\nApache (event MPM, mod_ssl): medians of %d runs of each command, alternating in one run\n", rounds)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "command\ttook\tof which the trial\tratio to the same without the trial\t")
	for _, c := range cmds {
		ratio, tr := "", ""
		if base, ok := took[c.name+" --no-trial"]; ok {
			ratio = fmt.Sprintf("%.2fx", float64(median(took[c.name]))/float64(median(base)))
			tr = median(trial[c.name]).Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", c.name, median(took[c.name]).Round(time.Millisecond), tr, ratio)
	}
	return tw.Flush()
}

func median(v []time.Duration) time.Duration {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// setup writes an Apache configuration with a TLS virtual host and a
// self-signed certificate into a new directory.
func setup() (string, error) {
	dir, err := os.MkdirTemp("", "bench-trial-")
	if err != nil {
		return "", err
	}
	for _, d := range []string{"htdocs", "run", "tls", "state"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", err
		}
	}
	cert, key, err := selfSigned()
	if err != nil {
		return "", err
	}
	files := map[string]string{
		"httpd.conf":        strings.ReplaceAll(conf, "DIR", dir),
		"htdocs/index.html": "ok\n",
		"tls/cert.pem":      string(cert),
		"tls/key.pem":       string(key),
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	return dir, os.Chmod(dir, 0o755)
}

const conf = `ServerRoot DIR
PidFile DIR/run/httpd.pid
ErrorLog DIR/error.log
DefaultRuntimeDir DIR/run
ServerName 127.0.0.1
User www-data
Group www-data
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
Listen 127.0.0.1:18080
Listen 127.0.0.1:18443 https
SSLSessionCache "shmcb:DIR/run/ssl_scache(512000)"
DocumentRoot DIR/htdocs
<Directory DIR/htdocs>
    Require all granted
</Directory>
<VirtualHost 127.0.0.1:18443>
    SSLEngine on
    SSLCertificateFile DIR/tls/cert.pem
    SSLCertificateKeyFile DIR/tls/key.pem
</VirtualHost>
`

func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), nil
}
