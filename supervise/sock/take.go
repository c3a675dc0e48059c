package sock

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// TakeListeners duplicates the master's listeners that the new
// configuration listens on (see ConfigListens) into safe-restart; the
// others, returned as left, close with the old master.
func TakeListeners(root string, master ipcguard.Proc, listen []string, log zerolog.Logger) (socks []Held, left []Listener, err error) {
	listening, err := ReadListening(root)
	if err != nil {
		return nil, nil, err
	}
	var want []Listener
	for _, l := range ListenersOf(root, master.PID, listening) {
		if ConfigListens(listen, l) {
			want = append(want, l)
		} else {
			log.Info().Str("listener", l.Addr).Msg("not in the new configuration: it closes with the old master")
			left = append(left, l)
		}
	}
	if len(want) == 0 {
		return nil, left, nil
	}
	if socks, err = DupListeners(root, master, want); err != nil {
		return nil, nil, fmt.Errorf("%w: cannot take master %d's listeners: %w", errNoHandoff, master.PID, err)
	}
	return socks, left, nil
}

// ConfigListens reports whether one of the configured listen addresses
// (nginx's and php-fpm's forms: "127.0.0.1:80", "[::1]:9000", "*:80", a
// bare port, a host name, a unix socket path) is the listener's.
func ConfigListens(listen []string, l Listener) bool {
	for _, c := range listen {
		for _, a := range listenCandidates(c) {
			if a == l.Addr {
				return true
			}
		}
	}
	return false
}

// listenCandidates returns the addresses, as sock.ReadListening writes them,
// that a configured listen address may be bound to.
func listenCandidates(c string) []string {
	if strings.HasPrefix(c, "/") || strings.HasPrefix(c, "@") {
		return []string{c}
	}
	if _, err := strconv.Atoi(c); err == nil {
		return []string{net.JoinHostPort("0.0.0.0", c), net.JoinHostPort("::", c)}
	}
	i := strings.LastIndex(c, ":")
	if i < 0 {
		return nil // nginx's "listen localhost" (port 80) and the like: not matched
	}
	host, port := strings.TrimSuffix(strings.TrimPrefix(c[:i], "["), "]"), c[i+1:]
	if host == "*" || host == "" {
		host = "0.0.0.0"
	}
	if ip := net.ParseIP(host); ip != nil {
		return []string{net.JoinHostPort(ip.String(), port)}
	}
	ips, _ := net.LookupIP(host)
	var out []string
	for _, ip := range ips {
		out = append(out, net.JoinHostPort(ip.String(), port))
	}
	return out
}

// errNoHandoff wraps the reasons a restart cannot hand its sockets over.
var errNoHandoff = errors.New("no socket handoff")
