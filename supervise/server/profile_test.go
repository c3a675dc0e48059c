package server

import (
	"reflect"
	"testing"
)

// TestCauseLines: the lines that say why a start failed come first by
// severity, a client's request never counts, and without a severe line
// the last lines are the cause.
func TestCauseLines(t *testing.T) {
	p := Profile{Driver: apacheKind{}}
	text := `AH00558: apache2: Could not reliably determine the server's fully qualified domain name
[Sun Dec 06 12:53:02.874072 2026] [ssl:warn] [pid 3:tid 3] AH01882: Init: this version of mod_ssl was compiled against a newer library
AH00016: Configuration Failed
[Sun Dec 06 12:53:02.877851 2026] [ssl:emerg] [pid 3:tid 3] AH02565: Certificate and private key localhost:18443:0 from c.pem and k.pem do not match
[Sun Dec 06 12:53:02.877851 2026] [core:error] [pid 3:tid 3] [client 127.0.0.1:1] AH00037: Symbolic link not allowed: /x [ssl:emerg]
(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:80
`
	got := p.CauseLines(text)
	want := []string{
		"[Sun Dec 06 12:53:02.877851 2026] [ssl:emerg] [pid 3:tid 3] AH02565: Certificate and private key localhost:18443:0 from c.pem and k.pem do not match",
		"(98)Address already in use: AH00072: make_sock: could not bind to address 127.0.0.1:80",
		"AH00558: apache2: Could not reliably determine the server's fully qualified domain name",
		"AH00016: Configuration Failed",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("CauseLines =\n%q\nwant\n%q", got, want)
	}
	if !p.HaltsStart(text) {
		t.Error("HaltsStart: false, want true (emerg and AH00072)")
	}
	if p.HaltsStart("[Sun Dec 06 12:53:02 2026] [ssl:error] [pid 3] AH02217: ssl_stapling_init_cert: can't retrieve issuer certificate!\nAH00558: no FQDN") {
		t.Error("HaltsStart: true for an error and a notice, want false (a server starts after them)")
	}
	access := `127.0.0.1 - - [06/Dec/2026:12:53:02 +0000] "GET /x:emerg] HTTP/1.1" 404 196`
	if p.HaltsStart(access) || len(p.CauseLines(access+"\n"+text)) != len(want) {
		t.Error("an access log line naming :emerg] in its request counts as the server's")
	}
	if got := p.CauseLines("one\ntwo\n"); !reflect.DeepEqual(got, []string{"one", "two"}) {
		t.Errorf("CauseLines without a severe line = %q, want the last lines", got)
	}
}
