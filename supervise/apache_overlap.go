package supervise

import "context"

// apacheReuseport makes Apache set SO_REUSEPORT on its listeners
// (listen.c make_sock does only when ListenCoresBucketsRatio > 0) while
// keeping a single listen bucket (buckets = online cores / ratio, at
// least 1), as without the directive. Given with -C, before the
// configuration is read, so a ListenCoresBucketsRatio of the user's own
// wins.
const apacheReuseport = "ListenCoresBucketsRatio 2147483647"

// reuseportArgv is startArgv with -C apacheReuseport: a master started so
// can be replaced by one started beside it (see overlapper).
func (k apacheKind) reuseportArgv(p Profile, conf string) []string {
	return append(k.startArgv(p, conf), "-C", apacheReuseport)
}

// reuseportTest runs the config test with -C apacheReuseport: Apache
// before 2.4.17 has no ListenCoresBucketsRatio, and a start with it would
// fail after the old master stopped.
func (k apacheKind) reuseportTest(ctx context.Context, p Profile, conf string) error {
	_, _, _, err := configTest(ctx, p.Name, k.command(p, conf, "-C", apacheReuseport, "-t"), []string{"APACHE_HTTPD=" + p.Binary})
	return err
}
