package generation

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/supervise/sock"
)

// Served is a certificate a TLS listener serves.
type Served struct {
	Listener string `json:"listener"`
	// ServerName is the name sent (SNI) that got it; "" for the
	// listener's default.
	ServerName string    `json:"server_name,omitempty"`
	Subject    string    `json:"subject"`
	Names      []string  `json:"names,omitempty"` // its DNS names
	NotAfter   time.Time `json:"not_after"`
	// File is the certificate file that holds it ("" when none of the
	// configuration's does).
	File string `json:"file,omitempty"`
	// NotServed is a certificate file of the configuration that holds a
	// newer certificate (a later NotBefore) for a name this one is served
	// for: a renewal the server has not loaded.
	NotServed string `json:"not_served,omitempty"`
}

// certFile is a certificate file of the configuration: its path and the
// first certificate in it (the server's own, before its chain).
type certFile struct {
	path string
	cert *x509.Certificate
}

// servedCerts shakes hands with each TCP listener: once without a server
// name, and once with the first name of each certificate file (a listener
// may refuse a handshake without a name: nginx's ssl_reject_handshake). A
// listener where no handshake completes speaks no TLS and is left out.
func servedCerts(listeners []sock.Listener, tlsFiles []string, timeout time.Duration) ([]Served, []string) {
	files, unread := readCertFiles(tlsFiles)
	out := []Served{}
	for _, l := range listeners {
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			continue // a unix socket
		}
		var got []Served
		for i, name := range append([]string{""}, certNames(files)...) {
			leaf, err := handshake(l.Addr, name, timeout)
			if i == 0 && err != nil && !tlsAlert(err) {
				break // no TLS here (a plain HTTP answer, a timeout): ask no name
			}
			if err != nil {
				continue // not a name this listener serves
			}
			if !slices.ContainsFunc(got, func(s Served) bool { return s.Subject == leaf.Subject.String() && s.NotAfter.Equal(leaf.NotAfter) }) {
				got = append(got, served(l.Addr, name, leaf, files))
			}
		}
		out = append(out, got...)
	}
	return out, unread
}

// tlsAlert reports whether a handshake failed with the peer's TLS alert:
// it speaks TLS, and refused the handshake (nginx's ssl_reject_handshake
// answers a nameless one so).
func tlsAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// certNames are the names to ask each listener for: the first of each
// certificate file, once each.
func certNames(files []certFile) []string {
	var out []string
	for _, f := range files {
		if name := firstName(f.cert); name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// served describes leaf, served on addr to name: the file that holds it,
// and a file with a newer certificate for one of its names.
func served(addr, name string, leaf *x509.Certificate, files []certFile) Served {
	s := Served{Listener: addr, ServerName: name, Subject: leaf.Subject.String(), Names: leaf.DNSNames, NotAfter: leaf.NotAfter}
	for _, f := range files {
		switch {
		case bytes.Equal(f.cert.Raw, leaf.Raw):
			s.File = f.path
		case s.NotServed == "" && sharesName(f.cert, leaf) && f.cert.NotBefore.After(leaf.NotBefore):
			s.NotServed = f.path
		}
	}
	if s.File != "" {
		s.NotServed = "" // the served one is on disk too: another file for the name is another site's
	}
	return s
}

// handshake connects to addr, completes a TLS handshake sending name (none
// when ""), and returns the certificate the server presented. It verifies
// nothing: it asks what is served, not whether to trust it.
func handshake(addr, name string, timeout time.Duration) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: timeout}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true}) //nolint:gosec // reads the served certificate, trusts nothing
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, errors.New("no certificate presented")
	}
	return certs[0], nil
}

// readCertFiles reads the first certificate of each file that holds one
// (key files hold none, and are skipped).
func readCertFiles(paths []string) ([]certFile, []string) {
	var out []certFile
	var unread []string
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			unread = append(unread, err.Error())
			continue
		}
		for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
			if block.Type != "CERTIFICATE" {
				continue
			}
			if c, err := x509.ParseCertificate(block.Bytes); err == nil {
				out = append(out, certFile{path: p, cert: c})
			} else {
				unread = append(unread, fmt.Sprintf("%s: %v", p, err))
			}
			break
		}
	}
	return out, unread
}

// firstName is the name to ask for c: its first DNS name, else its common
// name; "" for a wildcard-only or nameless certificate.
func firstName(c *x509.Certificate) string {
	for _, n := range append(slices.Clone(c.DNSNames), c.Subject.CommonName) {
		if n != "" && !strings.HasPrefix(n, "*") {
			return n
		}
	}
	return ""
}

// sharesName reports whether a and b are for one name at least.
func sharesName(a, b *x509.Certificate) bool {
	names := func(c *x509.Certificate) []string {
		if len(c.DNSNames) > 0 {
			return c.DNSNames
		}
		return []string{c.Subject.CommonName}
	}
	for _, n := range names(a) {
		if n != "" && slices.Contains(names(b), n) {
			return true
		}
	}
	return false
}
