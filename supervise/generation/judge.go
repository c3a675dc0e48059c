package generation

import "time"

// ExpiresSoon is how close to its end a served certificate is reported
// (certbot renews 30 days before; a renewal failing since is left 14 days).
const ExpiresSoon = 14 * 24 * time.Hour

// NotServed returns the certificates served while a file holds a newer
// one for their name.
func (r Report) NotServed() []Served {
	var out []Served
	for _, s := range r.TLS {
		if s.NotServed != "" {
			out = append(out, s)
		}
	}
	return out
}

// OfSite reports whether s is a site's certificate: one a certificate file
// of the configuration holds, or renewed in one, or served to one of the
// configuration's names; not a catch-all default server's that nothing
// configured names.
func (s Served) OfSite() bool { return s.File != "" || s.NotServed != "" || s.ServerName != "" }

// Expiring returns the sites' served certificates (OfSite) that end before
// now+ExpiresSoon (or already did).
func (r Report) Expiring(now time.Time) []Served {
	var out []Served
	for _, s := range r.TLS {
		if s.OfSite() && s.NotAfter.Before(now.Add(ExpiresSoon)) {
			out = append(out, s)
		}
	}
	return out
}

// Fix names the operation after which the serving generation runs what is
// on disk: "restart" for replaced code, which a reload does not load
// again (unless the server re-executes itself on a reload, reexecs:
// php-fpm), "reload" for changed files or a certificate not served, ""
// when nothing drifted.
func (r Report) Fix(reexecs bool) string {
	switch {
	case r.Replaced.Any() && !reexecs:
		return "restart"
	case r.Replaced.Any(), len(r.Changed) > 0, len(r.NotServed()) > 0:
		return "reload"
	}
	return ""
}

// DrainingSince is when the older generation began to drain (the serving
// one loaded), zero when none of its processes is alive.
func (r Report) DrainingSince() time.Time {
	if len(r.Old) == 0 {
		return time.Time{}
	}
	return r.Loaded
}
