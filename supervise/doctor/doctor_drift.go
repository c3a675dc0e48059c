package doctor

import (
	"fmt"
	"time"

	"github.com/safe-restart/safe-restart/supervise"
	"github.com/safe-restart/safe-restart/supervise/generation"
)

// lingerAfter is how long an older generation may drain before doctor
// reports it (nginx's and Apache's graceful reloads let requests in flight
// finish; a long download or a websocket can hold a worker for hours).
const lingerAfter = 10 * time.Minute

// driftFindings reports what the serving generation runs that is not on
// disk (replaced code, changed configuration files, a renewed certificate
// not served), a served certificate near its end, and an older generation
// draining for longer than lingerAfter.
func driftFindings(st supervise.Status, reexecs bool, now time.Time) []Finding {
	g := st.Generation
	if g == nil {
		return nil
	}
	var out []Finding
	fix := fmt.Sprintf("`safe-restart %s %s`", g.Fix(reexecs), st.Service)
	if g.Replaced.Any() {
		var ev []string
		if g.Replaced.Exe != "" {
			ev = append(ev, fmt.Sprintf("/proc/%d/exe: %s was replaced on disk since the master started %s", st.Master.PID, g.Replaced.Exe, st.Master.Start.Format(time.DateTime)))
		}
		for _, l := range g.Replaced.Libraries {
			ev = append(ev, fmt.Sprintf("/proc/%d/maps: %s (deleted)", st.Master.PID, l))
		}
		out = append(out, Finding{Check: "code-drift", Service: st.Service, Severity: Warning,
			Summary:  "the server runs code replaced on disk since it started (a package upgrade): security fixes are not running, and the next start runs a version never run here",
			Evidence: ev, Fix: fix + " runs the new code, verified, with the old master serving until it does"})
	}
	if len(g.Changed) > 0 {
		ev := []string{fmt.Sprintf("the serving generation loaded its configuration no later than %s (known from its %s)", g.Loaded.Format(time.DateTime), g.LoadedFrom)}
		for _, f := range g.Changed {
			ev = append(ev, fmt.Sprintf("%s modified %s", f.Path, f.Modified.Format(time.DateTime)))
		}
		out = append(out, Finding{Check: "config-drift", Service: st.Service, Severity: Warning,
			Summary:  "configuration files changed after the serving generation loaded them: it does not serve them, and the next reload (a logrotate or a deploy) applies them unannounced",
			Evidence: ev, Fix: fix + " proves the new configuration runs first (config test and trial) and changes nothing if it does not"})
	}
	if ns := g.NotServed(); len(ns) > 0 {
		out = append(out, Finding{Check: "tls-not-served", Service: st.Service, Severity: Critical,
			Summary:  "a renewed certificate is on disk but the server still serves the old one: clients see the old one's expiry",
			Evidence: servedEvidence(ns, true), Fix: fix + " serves it"})
	}
	if ex := g.Expiring(now); len(ex) > 0 {
		out = append(out, Finding{Check: "tls-expiry", Service: st.Service, Severity: Critical,
			Summary:  fmt.Sprintf("a served certificate expires within %d days", int(generation.ExpiresSoon.Hours()/24)),
			Evidence: servedEvidence(ex, false),
			Fix:      "renew the certificate (certbot renew), then `safe-restart reload " + st.Service + "`"})
	}
	if since := g.DrainingSince(); !since.IsZero() && now.Sub(since) > lingerAfter {
		var ev []string
		for _, o := range g.Old {
			ev = append(ev, fmt.Sprintf("pid %d started %s, %d open connection(s)", o.PID, o.Started.Format(time.DateTime), o.Connections))
		}
		out = append(out, Finding{Check: "old-generation", Service: st.Service, Severity: Warning,
			Summary: fmt.Sprintf("%d process(es) of an older generation still drain %s after the reload: they hold memory and run the old configuration for their clients",
				len(g.Old), now.Sub(since).Round(time.Minute)),
			Evidence: ev,
			Fix: fmt.Sprintf("`safe-restart reload %s --drain-timeout 5m` bounds the next drain (nginx: worker_shutdown_timeout bounds it in the server); "+
				"these pids end when their clients leave", st.Service)})
	}
	return out
}

// servedEvidence describes served certificates, and the file with the
// newer one when notServed.
func servedEvidence(ss []generation.Served, notServed bool) []string {
	var ev []string
	for _, s := range ss {
		line := fmt.Sprintf("%s serves %s, valid until %s", s.Listener, s.Subject, s.NotAfter.Format(time.DateTime))
		if s.ServerName != "" {
			line += " (to " + s.ServerName + ")"
		}
		if notServed {
			line += "; " + s.NotServed + " holds a newer certificate for that name"
		}
		ev = append(ev, line)
	}
	return ev
}
