//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Names of the overlap rows.
const (
	overlapNoMigrate = "overlap, tcp_migrate_req=0"
	overlapMigrate   = "overlap, tcp_migrate_req=1"
)

// setMigrateReq sets net.ipv4.tcp_migrate_req in this network namespace.
func setMigrateReq(on bool) error {
	v := "0\n"
	if on {
		v = "1\n"
	}
	return os.WriteFile("/proc/sys/net/ipv4/tcp_migrate_req", []byte(v), 0o644)
}

// reuseport is the directive that makes Apache set SO_REUSEPORT on its
// listeners (listen.c make_sock) while keeping one listen bucket: buckets =
// online cores / ratio, at least 1. The overlap by hand starts both
// masters with it (-C), as safe-restart starts its new masters.
const reuseport = "ListenCoresBucketsRatio 2147483647"

// overlap replaces the master by hand: the new master binds the same
// ports beside the old one (both with SO_REUSEPORT), and once it serves
// the old one is told to stop gracefully (WINCH), with
// net.ipv4.tcp_migrate_req set to migrate (and back to 0 after).
func (s *server) overlap(migrate bool) error {
	if err := setMigrateReq(migrate); err != nil {
		return err
	}
	defer setMigrateReq(false)
	old, err := s.masterPID()
	if err != nil {
		return err
	}
	pidFile := filepath.Join(s.dir, "apache2.pid")
	if err := os.Rename(pidFile, pidFile+".old"); err != nil {
		return err
	}
	if err := s.apache("-k", "start", apacheReuseportFlag, reuseport); err != nil {
		return err
	}
	if err := s.waitServing(20 * time.Second); err != nil {
		return err
	}
	nw, err := s.masterPID()
	if err != nil || nw == old {
		return fmt.Errorf("no new master (pid %d, old %d): %v", nw, old, err)
	}
	if err := syscall.Kill(old, syscall.SIGWINCH); err != nil {
		return err
	}
	// The old master removes the pidfile (now the new master's) when it
	// begins its graceful stop: put it back.
	for {
		if _, err := os.Stat(pidFile); errors.Is(err, os.ErrNotExist) {
			break
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", old)); errors.Is(err, os.ErrNotExist) {
			break
		}
		reapZombies()
		time.Sleep(time.Millisecond)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(nw)+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Remove(pidFile + ".old"); err != nil {
		return err
	}
	return s.waitGone(old)
}
