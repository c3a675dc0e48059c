package server

import (
	"fmt"
	"os"
	"slices"
	"strings"
)

// profiles are the built-in profiles, by name.
var profiles = map[string]Profile{
	"apache2": {Name: "apache2", Kind: "apache", Binary: "/usr/sbin/apache2", Conf: "/etc/apache2/apache2.conf", Ctl: "/usr/sbin/apache2ctl",
		EnvVars: "/etc/apache2/envvars", Unit: "apache2.service", Driver: apacheKind{}},
	"httpd": {Name: "httpd", Kind: "apache", Binary: "/usr/sbin/httpd", Conf: "/etc/httpd/conf/httpd.conf", Unit: "httpd.service", Driver: apacheKind{}},
}

// LookupProfile returns the built-in profile called name.
func LookupProfile(name string) (Profile, error) {
	if p, ok := profiles[name]; ok {
		return p, nil
	}
	for _, find := range profileFinders {
		if p, ok, err := find(name); ok || err != nil {
			return p, err
		}
	}
	names := make([]string, 0, len(profiles))
	for n := range profiles {
		names = append(names, n)
	}
	slices.Sort(names)
	return Profile{}, fmt.Errorf("%w %q (known: %s, php-fpm, phpX.Y-fpm, php-fpmX.Y, or a service file: PATH.toml or NAME in --service-dir)", ErrUnknownService, name, strings.Join(names, ", "))
}

// Installed returns the built-in profiles installed here: those whose
// binary and default config file exist (apache2, httpd, nginx, and each
// php-fpm version as phpX.Y-fpm), sorted by name.
func Installed() []Profile {
	var out []Profile
	exists := func(path string) bool { _, err := os.Stat(path); return err == nil }
	add := func(p Profile) {
		if exists(p.Binary) && exists(p.Conf) {
			out = append(out, p)
		}
	}
	for _, p := range profiles {
		add(p)
	}
	if bins, err := installedFPM(); err == nil {
		for _, b := range bins {
			v := strings.TrimPrefix(b[strings.LastIndex(b, "/")+1:], "php-fpm")
			name := "php-fpm"
			if v != "" {
				name = "php" + v + "-fpm"
			}
			add(fpmProfile(name, v))
		}
	}
	slices.SortFunc(out, func(a, b Profile) int { return strings.Compare(a.Name, b.Name) })
	return out
}
