package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// uptimeSlack absorbs the whole-second resolution of the master's start
// time and of ServerUptimeSeconds.
const uptimeSlack = 2 * time.Second

// ReloadsFromStatus reads mod_status's machine-readable page (`?auto`,
// REFERENCE.md §6): the master's config generation is 1 at start and grows
// by one at every USR1 and HUP, so it has been reloaded
// ParentServerConfigGeneration − 1 times. The page is the master's only if
// its ServerUptimeSeconds (since the start or the last HUP) is not longer
// than the master has lived: a page of another server started earlier is
// refused. A child of the previous generation still answering reports one
// less, never more.
func (apacheKind) ReloadsFromStatus(page string, master ipcguard.Proc, now time.Time) (int, error) {
	fields := statusFields(page)
	gen, err := strconv.Atoi(fields["ParentServerConfigGeneration"])
	if err != nil || gen < 1 {
		return 0, fmt.Errorf("no ParentServerConfigGeneration in the page (is it mod_status with ?auto?)")
	}
	up, err := strconv.ParseInt(fields["ServerUptimeSeconds"], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("no ServerUptimeSeconds in the page")
	}
	uptime := time.Duration(up) * time.Second
	if age := now.Sub(master.Start); uptime > age+uptimeSlack {
		return 0, fmt.Errorf("server up for %v, but master %d started %v ago: the page is another server's", uptime, master.PID, age.Round(time.Second))
	}
	return gen - 1, nil
}

// statusFields parses the "Key: value" lines of mod_status's ?auto page.
func statusFields(page string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(page, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

// statusTimeout bounds the status page request.
const statusTimeout = 2 * time.Second

// StatusReloads reads how many times master has been reloaded from the
// server's status page at url (Apache: mod_status ?auto); an error when
// the page does not say or is another server's.
func (p Profile) StatusReloads(ctx context.Context, url string, master ipcguard.Proc) (int, error) {
	return statusReloads(ctx, p.Driver, url, master)
}

// statusReloads fetches url and reads master's reload count from it.
func statusReloads(ctx context.Context, k Driver, url string, master ipcguard.Proc) (int, error) {
	sc, ok := k.(StatusCounter)
	if !ok {
		return 0, errors.New("this server's status page does not count reloads")
	}
	page, err := fetchStatus(ctx, url)
	if err != nil {
		return 0, err
	}
	n, err := sc.ReloadsFromStatus(page, master, time.Now())
	if err != nil {
		return 0, fmt.Errorf("status page %s: %w", url, err)
	}
	return n, nil
}

// fetchStatus GETs url and returns its body (the first 64 KiB), which
// must come with 200 OK.
func fetchStatus(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("status page %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("status page: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status page %s: %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("status page %s: %w", url, err)
	}
	return string(body), nil
}
