package server

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

func init() { profileFinders = append(profileFinders, findFPM) }

// fpmSbin is where the php-fpm binaries are looked for.
var fpmSbin = "/usr/sbin"

// fpmName matches the names of a php-fpm service: php-fpm, Debian's
// service php8.2-fpm, and its binary's name php-fpm8.2.
var fpmName = regexp.MustCompile(`^(?:php-fpm|php(\d+\.\d+)-fpm|php-fpm(\d+\.\d+))$`)

// fpmVersion matches a php-fpm binary's version suffix.
var fpmVersion = regexp.MustCompile(`^\d+\.\d+$`)

// findFPM resolves a php-fpm service name: a versioned name to Debian's
// /usr/sbin/php-fpmX.Y and /etc/php/X.Y/fpm/php-fpm.conf; plain php-fpm to
// the one version installed (RHEL's unversioned /usr/sbin/php-fpm with
// /etc/php-fpm.conf included), and to an error listing them when several
// are.
func findFPM(name string) (Profile, bool, error) {
	m := fpmName.FindStringSubmatch(name)
	if m == nil {
		return Profile{}, false, nil
	}
	if v := m[1] + m[2]; v != "" {
		return fpmProfile(name, v), true, nil
	}
	found, err := installedFPM()
	if err != nil {
		return Profile{}, true, err
	}
	switch len(found) {
	case 0:
		return Profile{}, true, fmt.Errorf("%w %q: no php-fpm binary in %s (php-fpm or php-fpmX.Y)", ErrUnknownService, name, fpmSbin)
	case 1:
		return fpmProfile(name, strings.TrimPrefix(filepath.Base(found[0]), "php-fpm")), true, nil
	}
	return Profile{}, true, fmt.Errorf("%w %q: several php-fpm versions are installed (%s): name one, e.g. php%s-fpm",
		ErrUnknownService, name, strings.Join(found, ", "), strings.TrimPrefix(filepath.Base(found[len(found)-1]), "php-fpm"))
}

// installedFPM lists the php-fpm binaries in fpmSbin, sorted.
func installedFPM() ([]string, error) {
	found, err := filepath.Glob(filepath.Join(fpmSbin, "php-fpm*"))
	if err != nil {
		return nil, err
	}
	found = slices.DeleteFunc(found, func(p string) bool {
		v := strings.TrimPrefix(filepath.Base(p), "php-fpm")
		return v != "" && !fpmVersion.MatchString(v)
	})
	slices.Sort(found)
	return found, nil
}

// fpmProfile is the profile of php-fpm version v ("" for an unversioned
// install).
func fpmProfile(name, v string) Profile {
	if v == "" {
		return Profile{Name: name, Kind: "php-fpm", Binary: filepath.Join(fpmSbin, "php-fpm"), Conf: "/etc/php-fpm.conf", Unit: "php-fpm.service", Driver: fpmKind{}}
	}
	return Profile{Name: name, Kind: "php-fpm", Binary: filepath.Join(fpmSbin, "php-fpm"+v),
		Conf: "/etc/php/" + v + "/fpm/php-fpm.conf", Unit: "php" + v + "-fpm.service", Driver: fpmKind{}}
}
