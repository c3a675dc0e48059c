package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/safe-restart/safe-restart/internal/nstest"
)

// debianDump is what Debian 12's apache2ctl -t -D DUMP_RUN_CFG prints.
const debianDump = `ServerRoot: "/etc/apache2"
Main DocumentRoot: "/var/www/html"
Main ErrorLog: "/var/log/apache2/error.log"
Mutex default: dir="/var/run/apache2/" mechanism=default 
Mutex watchdog-callback: using_defaults
PidFile: "/var/run/apache2/apache2.pid"
Define: DUMP_RUN_CFG
User: name="www-data" id=33
Group: name="www-data" id=33
`

func TestParseRunConfig(t *testing.T) {
	rc, err := parseRunConfig(debianDump)
	if err != nil {
		t.Fatal(err)
	}
	want := RunConfig{ServerRoot: "/etc/apache2", PidFile: "/var/run/apache2/apache2.pid", ErrorLog: "/var/log/apache2/error.log",
		User: Account{"www-data", 33}, Group: Account{"www-data", 33}}
	if rc.ServerRoot != want.ServerRoot || rc.PidFile != want.PidFile || rc.ErrorLog != want.ErrorLog || rc.User != want.User || rc.Group != want.Group {
		t.Errorf("got %+v\nwant %+v", rc, want)
	}
	if rc.Mutexes["default"] != `dir="/var/run/apache2/" mechanism=default` || rc.Mutexes["watchdog-callback"] != "using_defaults" {
		t.Errorf("mutexes %v", rc.Mutexes)
	}
}

// TestApacheFiles: DUMP_INCLUDES' list, printed before DUMP_RUN_CFG's
// report, gives the files read; the certificate and key directives in
// them give the TLS files (relative to ServerRoot, quoted or not, any
// case), a variable path none.
func TestApacheFiles(t *testing.T) {
	dir := t.TempDir()
	site := filepath.Join(dir, "site.conf")
	if err := os.WriteFile(site, []byte(`<VirtualHost *:443>
	SSLEngine on
	sslcertificatefile "/etc/ssl/a.pem"
	SSLCertificateKeyFile private/a.key
	# SSLCertificateFile /commented.pem
	SSLCertificateFile ${APACHE_CERT}
</VirtualHost>
`), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := parseRunConfig("Included configuration files:\n  (*) /etc/apache2/apache2.conf\n    (146) " + site + "\n" + debianDump)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/etc/apache2/apache2.conf", site}; !slices.Equal(rc.Files, want) {
		t.Errorf("files %q, want %q", rc.Files, want)
	}
	if got, want := apacheTLSFiles("/etc/apache2", rc.Files), []string{"/etc/ssl/a.pem", "/etc/apache2/private/a.key"}; !slices.Equal(got, want) {
		t.Errorf("TLS files %q, want %q", got, want)
	}
}

func TestParseRunConfigErrors(t *testing.T) {
	for name, in := range map[string]string{
		"no user":      "ServerRoot: \"/etc/apache2\"\n",
		"bad user id":  "User: name=\"www-data\" id=x\n",
		"bad user":     "User: www-data\n",
		"negative id":  "User: name=\"a\" id=-1\n",
		"empty output": "",
	} {
		if _, err := parseRunConfig(in); err == nil {
			t.Errorf("%s: no error for %q", name, in)
		}
	}
	// Apache's dump when it does not run as root: not a parse error, a
	// refusal that says root is needed.
	_, err := parseRunConfig("User: name=\"www-data\" id=33 not_used\nGroup: name=\"www-data\" id=33 not_used\n")
	if !errors.Is(err, ErrNotRoot) || !strings.Contains(err.Error(), "must run as root") {
		t.Errorf("User not_used: %v, want ErrNotRoot", err)
	}
}

func FuzzParseRunConfig(f *testing.F) {
	f.Add(debianDump)
	f.Add("User: name=\"\\\"\" id=4294967295\n")
	f.Fuzz(func(t *testing.T, s string) {
		rc, err := parseRunConfig(s)
		if err == nil && !strings.Contains(s, "User: ") {
			t.Fatalf("accepted output without a User line: %+v", rc)
		}
	})
}

func TestLookupProfile(t *testing.T) {
	if p, err := LookupProfile("apache2"); err != nil || p.Binary != "/usr/sbin/apache2" {
		t.Errorf("apache2: %+v, %v", p, err)
	}
	if _, err := LookupProfile("nope"); !errors.Is(err, ErrUnknownService) || !strings.Contains(err.Error(), "apache2, httpd") {
		t.Errorf("nope: %v", err)
	}
}

func TestLineageWindow(t *testing.T) {
	if got := LineageWindow(0); got != MinLineageWindow {
		t.Errorf("LineageWindow(0) = %s", got)
	}
	if got := LineageWindow(3 * MinLineageWindow); got != 15*MinLineageWindow {
		t.Errorf("LineageWindow(30s) = %s", got)
	}
}

// TestReadRunConfigReal asks the real apache2 (through Debian's apache2ctl)
// about a config, and gets a ConfigTestError naming the problem for a bad
// one.
func TestReadRunConfigReal(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl")
	p, err := LookupProfile("apache2")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "good.conf")
	conf := "ServerRoot " + dir + "\nPidFile " + dir + "/pid\nErrorLog " + dir + "/error.log\nUser www-data\nGroup www-data\n" +
		"LoadModule mpm_prefork_module /usr/lib/apache2/modules/mod_mpm_prefork.so\nListen 127.0.0.1:1\nServerName x\n"
	writeFile(t, good, conf)
	rc, err := ReadRunConfig(context.Background(), p, good)
	if err != nil {
		t.Fatal(err)
	}
	if rc.User.Name != "www-data" || rc.User.ID != 33 || rc.PidFile != dir+"/pid" || rc.Elapsed <= 0 {
		t.Errorf("run config %+v", rc)
	}
	bad := filepath.Join(dir, "bad.conf")
	writeFile(t, bad, conf+"NoSuchDirective on\n")
	_, err = ReadRunConfig(context.Background(), p, bad)
	var cte *ConfigTestError
	if !errors.As(err, &cte) || !errors.Is(err, ErrConfigTest) || !strings.Contains(cte.Output, "NoSuchDirective") {
		t.Fatalf("bad config: %v", err)
	}
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
