package server

import "testing"

// TestStartedConf: each server's master command line names the
// configuration it was started with, or none this can resolve.
func TestStartedConf(t *testing.T) {
	for _, c := range []struct {
		name string
		k    ConfReporter
		argv []string
		want string
	}{
		{"apache -f", apacheKind{}, []string{"/usr/sbin/apache2", "-f", "/etc/b/httpd.conf", "-k", "start"}, "/etc/b/httpd.conf"},
		{"apache -d (Debian apache2-NAME)", apacheKind{}, []string{"/usr/sbin/apache2", "-d", "/etc/apache2-b", "-k", "start"}, "/etc/apache2-b/apache2.conf"},
		{"apache -d and a relative -f", apacheKind{}, []string{"/usr/sbin/apache2", "-d", "/srv/x", "-f", "conf/h.conf"}, "/srv/x/conf/h.conf"},
		{"apache defaults", apacheKind{}, []string{"/usr/sbin/apache2", "-k", "start"}, ""},
		{"apache relative -f alone", apacheKind{}, []string{"/usr/sbin/apache2", "-f", "h.conf"}, ""},
		{"nginx -c", nginxKind{}, []string{"nginx: master process /usr/sbin/nginx -c /etc/n/nginx.conf -g daemon on;"}, "/etc/n/nginx.conf"},
		{"nginx defaults", nginxKind{}, []string{"nginx: master process /usr/sbin/nginx -g daemon on; master_process on;"}, ""},
		{"nginx not yet titled", nginxKind{}, []string{"/usr/sbin/nginx", "-c", "/etc/n/nginx.conf"}, "/etc/n/nginx.conf"},
		{"php-fpm", fpmKind{}, []string{"php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)"}, "/etc/php/8.2/fpm/php-fpm.conf"},
		{"php-fpm worker", fpmKind{}, []string{"php-fpm: pool www"}, ""},
	} {
		got, ok := c.k.StartedConf(c.argv)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s: startedConf(%q) = %q, %v; want %q", c.name, c.argv, got, ok, c.want)
		}
	}
}
