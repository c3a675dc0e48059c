package server

// apacheReuseport makes Apache set SO_REUSEPORT on its listeners
// (listen.c make_sock does only when ListenCoresBucketsRatio > 0) while
// keeping a single listen bucket (buckets = online cores / ratio, at
// least 1), as without the directive. Given with -C, before the
// configuration is read, so a ListenCoresBucketsRatio of the user's own
// wins.
const apacheReuseport = "ListenCoresBucketsRatio 2147483647"

// ReuseportArgv is StartArgv with -C apacheReuseport: a master started so
// can be replaced by one started beside it (see Overlapper).
func (k apacheKind) ReuseportArgv(p Profile, conf string) []string {
	return append(k.StartArgv(p, conf), "-C", apacheReuseport)
}
