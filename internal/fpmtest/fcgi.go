package fpmtest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// FastCGI record types and the responder role (FastCGI 1.0 specification,
// section 8).
const (
	fcgiBeginRequest = 1
	fcgiEndRequest   = 3
	fcgiParams       = 4
	fcgiStdin        = 5
	fcgiStdout       = 6
	fcgiStderr       = 7
	fcgiResponder    = 1
)

// FastCGIGet sends one GET for script (a path under root, with an
// optional ?query) to the FastCGI server at addr ("127.0.0.1:9000" or a
// unix socket path), as a web server would, and returns the HTTP status
// (200 unless the script set a Status header) and the body. A refused
// connection or a reply cut short is an error.
func FastCGIGet(addr, root, script string, timeout time.Duration) (int, string, error) {
	network := "tcp"
	if strings.HasPrefix(addr, "/") {
		network = "unix"
	}
	c, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return 0, "", err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, "", err
	}
	path, query, _ := strings.Cut(script, "?")
	params := map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET",
		"SCRIPT_FILENAME": root + path, "SCRIPT_NAME": path, "DOCUMENT_ROOT": root,
		"REQUEST_URI": script, "QUERY_STRING": query, "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
	}
	var req bytes.Buffer
	writeRecord(&req, fcgiBeginRequest, []byte{0, fcgiResponder, 0, 0, 0, 0, 0, 0})
	writeRecord(&req, fcgiParams, encodeParams(params))
	writeRecord(&req, fcgiParams, nil)
	writeRecord(&req, fcgiStdin, nil)
	if _, err := c.Write(req.Bytes()); err != nil {
		return 0, "", err
	}
	stdout, err := readResponse(c)
	if err != nil {
		return 0, "", err
	}
	return parseCGIResponse(stdout)
}

func writeRecord(w *bytes.Buffer, typ byte, content []byte) {
	pad := (8 - len(content)%8) % 8
	w.Write([]byte{1, typ, 0, 1, byte(len(content) >> 8), byte(len(content)), byte(pad), 0})
	w.Write(content)
	w.Write(make([]byte, pad))
}

// encodeParams encodes name-value pairs (lengths below 128 in one byte,
// else four with the high bit set).
func encodeParams(params map[string]string) []byte {
	var b bytes.Buffer
	putLen := func(n int) {
		if n < 128 {
			b.WriteByte(byte(n))
			return
		}
		_ = binary.Write(&b, binary.BigEndian, uint32(n)|1<<31)
	}
	for k, v := range params {
		putLen(len(k))
		putLen(len(v))
		b.WriteString(k)
		b.WriteString(v)
	}
	return b.Bytes()
}

// readResponse reads records until FCGI_END_REQUEST and returns the
// stdout stream; stderr output is an error.
func readResponse(r io.Reader) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	br := bufio.NewReader(r)
	for {
		var h [8]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return nil, fmt.Errorf("fastcgi reply cut short: %w", err)
		}
		n := int(h[4])<<8 | int(h[5])
		content := make([]byte, n+int(h[6])) // content, then padding
		if _, err := io.ReadFull(br, content); err != nil {
			return nil, fmt.Errorf("fastcgi reply cut short: %w", err)
		}
		content = content[:n]
		switch h[1] {
		case fcgiStdout:
			stdout.Write(content)
		case fcgiStderr:
			stderr.Write(content)
		case fcgiEndRequest:
			if stderr.Len() > 0 {
				return stdout.Bytes(), fmt.Errorf("fastcgi stderr: %s", stderr.String())
			}
			return stdout.Bytes(), nil
		}
	}
}

// parseCGIResponse splits a CGI response into its status and body.
func parseCGIResponse(out []byte) (int, string, error) {
	tp := textproto.NewReader(bufio.NewReader(bytes.NewReader(out)))
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return 0, "", fmt.Errorf("fastcgi response headers: %w", err)
	}
	body, _ := io.ReadAll(tp.R)
	code := 200
	if s := h.Get("Status"); s != "" {
		if code, err = strconv.Atoi(strings.Fields(s)[0]); err != nil {
			return 0, "", fmt.Errorf("fastcgi Status %q: %w", s, err)
		}
	}
	return code, string(body), nil
}
