package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/safe-restart/safe-restart/ipcguard"
)

// statusCounter is a kind whose status page counts the master's reloads
// (Apache's mod_status). The error log, with the files logrotate renamed
// from it, is the other source (masterLog).
type statusCounter interface {
	// reloadsFromStatus reads how many times master has been reloaded from
	// its status page; an error when the page does not say, or is not
	// this master's.
	reloadsFromStatus(page string, master ipcguard.Proc, now time.Time) (int, error)
}

// statusTimeout bounds the status page request.
const statusTimeout = 2 * time.Second

// reloadCount returns how many times master has been reloaded and where
// the count comes from: the status page at StatusURL when it is set and
// answers for this master, else the reloads logged in its error log and
// the rotated ones since it started (-1 when the server does not log them).
func (o ReloadOptions) reloadCount(ctx context.Context, master ipcguard.Proc, rc RunConfig) (int, string) {
	k := o.Start.Profile.kind
	if o.StatusURL != "" {
		n, err := statusReloads(ctx, k, o.StatusURL, master)
		if err == nil {
			return n, "status page"
		}
		o.Start.Log.Warn().Err(err).Msg("counting reloads in the error log and its rotated files instead")
	}
	return k.reloadsLogged(masterLog(rc.ServerRoot, rc.ErrorLog, master.Start), master), "error log"
}

// StatusReloads reads how many times master has been reloaded from the
// server's status page at url (Apache: mod_status ?auto); an error when
// the page does not say or is another server's.
func (p Profile) StatusReloads(ctx context.Context, url string, master ipcguard.Proc) (int, error) {
	return statusReloads(ctx, p.kind, url, master)
}

// statusReloads fetches url and reads master's reload count from it.
func statusReloads(ctx context.Context, k kind, url string, master ipcguard.Proc) (int, error) {
	sc, ok := k.(statusCounter)
	if !ok {
		return 0, errors.New("this server's status page does not count reloads")
	}
	page, err := fetchStatus(ctx, url)
	if err != nil {
		return 0, err
	}
	n, err := sc.reloadsFromStatus(page, master, time.Now())
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
