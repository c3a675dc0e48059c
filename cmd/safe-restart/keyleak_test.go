package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/safe-restart/safe-restart/internal/apachetest"
	"github.com/safe-restart/safe-restart/internal/nstest"
)

// modKeyLeak is an Apache module that reproduces the libgomp crash of
// REFERENCE.md §7 on every configuration load. Apache clears pconf before
// each load (start, USR1, HUP), which dlcloses every LoadModule'd DSO and
// loads it again, so whatever a module does there happens once per reload.
// Its post_config hook, which runs in the master on every load:
//
//   - leaks KeyLeakPerLoad pthread keys, ignoring failures, as a library
//     that creates keys and never deletes them does;
//   - then, as libgomp's initialize_team does, creates one key that a pool
//     cleanup deletes again (balanced, as libgomp's team_destructor is),
//     and when glibc has none left (EAGAIN) prints libgomp's line to stderr
//     (the master's error log) and calls exit(EXIT_FAILURE).
//
// The config test (apache2 -t) and `apache2 -k graceful` stop before
// post_config, so only the master ever runs out.
const modKeyLeak = `#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "httpd.h"
#include "http_config.h"

module AP_MODULE_DECLARE_DATA keyleak_module;

static int per_load;
static pthread_key_t pool_key;

static const char *set_per_load(cmd_parms *cmd, void *dummy, const char *arg)
{
    per_load = atoi(arg);
    return NULL;
}

static apr_status_t delete_pool_key(void *data)
{
    pthread_key_delete(pool_key);
    return APR_SUCCESS;
}

static int leak_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    for (int i = 0; i < per_load; i++) {
        pthread_key_t k;
        pthread_key_create(&k, NULL);
    }
    if (pthread_key_create(&pool_key, NULL) != 0) {
        fputs("\nlibgomp: could not create thread pool destructor.\n", stderr);
        exit(EXIT_FAILURE);
    }
    apr_pool_cleanup_register(pconf, NULL, delete_pool_key, apr_pool_cleanup_null);
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    ap_hook_post_config(leak_post_config, NULL, NULL, APR_HOOK_MIDDLE);
}

static const command_rec cmds[] = {
    AP_INIT_TAKE1("KeyLeakPerLoad", set_per_load, NULL, RSRC_CONF, "pthread keys leaked per configuration load"),
    {NULL}
};

module AP_MODULE_DECLARE_DATA keyleak_module = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, cmds, register_hooks
};
`

// libgompFatal is the line libgomp's gomp_fatal prints before exit(1).
const libgompFatal = "libgomp: could not create thread pool destructor."

// keysPerLoad is how many keys mod_keyleak leaks per configuration load:
// the 1024-key table runs out in about 20 loads (two at start), and it
// stays below the 64 keys safe-restart keeps free before a reload.
const keysPerLoad = 50

// buildKeyLeak compiles modKeyLeak with apxs in a temporary directory and
// returns the httpd.conf lines that load it.
func buildKeyLeak(t *testing.T) string {
	t.Helper()
	so := buildModule(t, "keyleak", modKeyLeak)
	// The children (www-data) need not read it: only the master loads it.
	return fmt.Sprintf("LoadModule keyleak_module %s\nKeyLeakPerLoad %d", so, keysPerLoad)
}

// buildModule builds mod_NAME.c from source with apxs and returns the
// shared object's path.
func buildModule(t *testing.T, name, source string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mod_"+name+".c"), []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("apxs", "-c", "mod_"+name+".c")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apxs -c: %v\n%s", err, out)
	}
	so := filepath.Join(dir, ".libs", "mod_"+name+".so")
	if _, err := os.Stat(so); err != nil {
		t.Fatalf("apxs built no module: %v", err)
	}
	return so
}

// gracefulUntilDeath runs plain `apache2 -k graceful` up to limit times, each
// time waiting until the master logged the new generation or exited. It
// returns how many gracefuls it ran; each must exit 0.
func gracefulUntilDeath(t *testing.T, srv *apachetest.Server, limit int) int {
	t.Helper()
	master := srv.Master()
	for i := 1; i <= limit; i++ {
		before := strings.Count(srv.ErrorLogText(), "resuming normal operations")
		if out, err := srv.Ctl("graceful"); err != nil {
			t.Fatalf("apache2 -k graceful %d: %v\n%s", i, err, out)
		}
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(srv.ErrorLogText(), "resuming normal operations") == before {
			if !master.Alive() {
				return i
			}
			if time.Now().After(deadline) {
				t.Fatalf("graceful %d: master %d neither resumed nor exited\n%s", i, master.PID, srv.ErrorLogText())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return limit
}

// TestReloadOutlivesLeakingModule: an Apache module built with apxs leaks
// pthread keys on every configuration load. Plain `apache2 -k graceful`
// exits 0 every time, yet one of them kills the master with libgomp's
// line; as many `safe-restart reload` leave the server serving, because
// safe-restart reads the master's key table and restarts it in time.
func TestReloadOutlivesLeakingModule(t *testing.T) {
	nstest.RequireBinaries(t, "apache2", "apache2ctl", "apxs")
	if !nstest.InPrivateNamespaces(t) {
		return
	}
	extra := buildKeyLeak(t)
	const limit = 40 // 1024/50 loads is the most it can take
	plain := apachetest.Start(t, apachetest.Config{MPM: "prefork", Extra: extra})
	n := gracefulUntilDeath(t, plain, limit)
	if plain.Master().Alive() {
		t.Fatalf("the master survived %d gracefuls leaking %d keys each", limit, keysPerLoad)
	}
	if log := plain.ErrorLogText(); !strings.Contains(log, libgompFatal) {
		t.Fatalf("the master died after graceful %d without %q:\n%s", n, libgompFatal, log)
	}
	if _, _, err := plain.Get("/"); err == nil {
		t.Fatal("the dead server still answers")
	}
	t.Logf("plain apache2 -k graceful: %d runs, each exit 0; the master died in the last", n)

	srv := apachetest.Start(t, apachetest.Config{MPM: "prefork", Extra: extra})
	state := t.TempDir()
	restarts := 0
	for i := 1; i <= n; i++ {
		code, out, errOut := runCLI(t, "reload", "apache2", "--conf", srv.ConfPath, "--state-dir", state)
		if code != exitOK {
			t.Fatalf("safe-restart reload %d: exit %d\n%s\n%s", i, code, out, errOut)
		}
		if strings.Contains(out, "pthread keys") {
			restarts++
		}
	}
	if restarts == 0 {
		t.Fatalf("%d reloads and no restart instead: the master should have been recycled", n)
	}
	if log := srv.ErrorLogText(); strings.Contains(log, libgompFatal) {
		t.Fatalf("a master died of exhausted keys under safe-restart:\n%s", log)
	}
	if c, _, err := srv.Get("/"); err != nil || c != 200 {
		t.Fatalf("GET after %d reloads: %d, %v", n, c, err)
	}
	t.Logf("safe-restart reload: %d runs, each exit 0, %d of them restarts instead", n, restarts)
}
