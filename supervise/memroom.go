package supervise

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/growth"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// memoryBlocker says why a new generation beside the old one might not
// fit in memory, "" when it fits: the old tree's PSS (what a second
// generation would add, its code shared) against MemAvailable, and
// against the room under the memory limits of the cgroup v2 directory
// cgroup (where the new master starts; "" for none) and its ancestors.
// What cannot be measured is logged and blocks nothing, the overlap being
// the path that refuses no client, unless the cgroup has a memory limit:
// an OOM kill there may stop the whole unit, both generations.
func memoryBlocker(root string, old ipcguard.Proc, cgroup string, log zerolog.Logger) string {
	need, _, err := proc.TreePSS(root, old)
	if err == nil {
		var room int64
		var where string
		if room, where, err = memAvailable(root); err == nil {
			if r, dir, ok := cgroupRoom(cgroup); ok && r < room {
				room, where = r, "the memory limit of cgroup "+dir
			}
			if need > room {
				return fmt.Sprintf("the old generation uses %s (PSS) and %s leaves %s: no room for two generations at once", growth.FormatBytes(need), where, growth.FormatBytes(room))
			}
			return ""
		}
	}
	if _, dir, ok := cgroupRoom(cgroup); ok {
		return fmt.Sprintf("cannot measure the memory two generations need (%v), and cgroup %s has a memory limit", err, dir)
	}
	log.Warn().Err(err).Msg("cannot measure the memory two generations need: overlapping anyway")
	return ""
}

// memAvailable returns /proc/meminfo's MemAvailable in bytes, and its name.
func memAvailable(root string) (int64, string, error) {
	n, found, err := proc.ReadKiBLine(filepath.Join(root, "meminfo"), "MemAvailable:")
	if err == nil && !found {
		err = fmt.Errorf("%w: /proc/meminfo has no MemAvailable line", ipcguard.ErrMalformed)
	}
	return n, "MemAvailable", err
}

// cgroupRoom returns the least room (memory.max less memory.current)
// under the limits of dir and its ancestors up to cgroupRoot, and the
// directory that sets it; ok is false when none has a limit.
func cgroupRoom(dir string) (room int64, at string, ok bool) {
	for d := dir; strings.HasPrefix(d, proc.CgroupRoot); d = filepath.Dir(d) {
		limit, err1 := readCgroupInt(filepath.Join(d, "memory.max"))
		cur, err2 := readCgroupInt(filepath.Join(d, "memory.current"))
		if err1 == nil && err2 == nil && (!ok || limit-cur < room) {
			room, at, ok = max(limit-cur, 0), d, true
		}
		if d == proc.CgroupRoot {
			break
		}
	}
	return room, at, ok
}

// readCgroupInt reads a cgroup file holding one number; "max" (no limit)
// is an error.
func readCgroupInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}
