package generation

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/supervise/proc"
	"github.com/safe-restart/safe-restart/supervise/sock"
)

// newCert returns a self-signed certificate for name and its PEM, issued
// 1000-serial hours ago and valid for serial hours more: a higher serial is
// a later renewal.
func newCert(t *testing.T, name string, serial int64) (tls.Certificate, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(time.Duration(serial-1000) * time.Hour), NotAfter: time.Now().Add(time.Duration(serial) * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// serveTLS serves certs (the first by default, the others by name) on a
// loopback listener until the test ends; with rejectNameless, a handshake
// without a server name fails (nginx's ssl_reject_handshake).
func serveTLS(t *testing.T, rejectNameless bool, certs ...tls.Certificate) string {
	t.Helper()
	conf := &tls.Config{Certificates: certs}
	if rejectNameless {
		conf.GetCertificate = func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if h.ServerName != "b.test" {
				return nil, errors.New("not a name of this listener")
			}
			return &certs[len(certs)-1], nil
		}
		conf.Certificates = nil
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _ = c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	return l.Addr().String()
}

// TestServedCerts: a listener serving a.test's certificate as the file
// holds it, and b.test's while its file holds a renewal; a plain TCP
// listener (no TLS) and a unix socket are left out; a key file is no
// certificate.
func TestServedCerts(t *testing.T) {
	dir := t.TempDir()
	a, aPEM := newCert(t, "a.test", 100)
	b, _ := newCert(t, "b.test", 200)
	_, bRenewed := newCert(t, "b.test", 300)
	files := map[string][]byte{"a.pem": aPEM, "b.pem": bRenewed, "a.key": []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n")}
	var paths []string
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	addr := serveTLS(t, false, a, b)
	rejecting := serveTLS(t, true, b)
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	go func() {
		for {
			c, err := plain.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	got, unread := servedCerts([]sock.Listener{{Addr: addr}, {Addr: plain.Addr().String()}, {Addr: "/run/x.sock"}, {Addr: rejecting}}, paths, time.Second)
	if len(unread) != 0 {
		t.Errorf("unread: %q", unread)
	}
	byName := map[string]Served{}
	for _, s := range got {
		switch {
		case s.Listener == rejecting && s.ServerName == "b.test" && s.NotServed == filepath.Join(dir, "b.pem"):
			continue
		case s.Listener != addr:
			t.Errorf("a certificate from %s: %+v", s.Listener, s)
		}
		byName[s.Subject] = s
	}
	if len(got) != 3 {
		t.Fatalf("served: %+v, want a.test's and b.test's on %s, b.test's on %s", got, addr, rejecting)
	}
	if s := byName["CN=a.test"]; s.File != filepath.Join(dir, "a.pem") || s.NotServed != "" {
		t.Errorf("a.test: %+v", s)
	}
	if s := byName["CN=b.test"]; s.File != "" || s.NotServed != filepath.Join(dir, "b.pem") || s.ServerName != "b.test" {
		t.Errorf("b.test: %+v", s)
	}
	r := Report{TLS: got[:2]}
	if len(r.NotServed()) != 1 || r.Fix(false) != "reload" || len(r.Expiring(time.Now())) != 2 || len(r.Expiring(time.Now().Add(-ExpiresSoon))) != 0 {
		t.Errorf("judged: not served %v, fix %q, expiring %v", r.NotServed(), r.Fix(false), r.Expiring(time.Now()))
	}
}

// TestChangedSince: a file is changed when its own or its link's times
// are after t; a missing file is unread, not changed.
func TestChangedSince(t *testing.T) {
	dir := t.TempDir()
	old, link, target := filepath.Join(dir, "old"), filepath.Join(dir, "live"), filepath.Join(dir, "archive")
	for _, p := range []string{old, target} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-time.Hour)
	for _, p := range []string{old, target} {
		if err := os.Chtimes(p, past, past); err != nil {
			t.Fatal(err)
		}
	}
	// ctime cannot be set back: judge against a moment between.
	got, unread := changedSince([]string{old, link, filepath.Join(dir, "missing")}, time.Now().Add(-time.Minute))
	if len(unread) != 1 || len(got) != 2 {
		t.Fatalf("changed %+v, unread %q", got, unread)
	}
	got, _ = changedSince([]string{old, link}, time.Now().Add(time.Minute))
	if len(got) != 0 {
		t.Fatalf("changed after the files: %+v", got)
	}
	if (Report{Changed: got}).Fix(false) != "" || (Report{Replaced: replacedExe}).Fix(false) != "restart" || (Report{Replaced: replacedExe}).Fix(true) != "reload" {
		t.Error("Fix")
	}
}

var replacedExe = proc.Replaced{Exe: "/usr/sbin/x"}
