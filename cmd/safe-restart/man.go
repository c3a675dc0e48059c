package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manFiles is the FILES section of safe-restart(1): what it reads and
// writes, in go-md2man's markdown.
const manFiles = `# FILES
**/run/safe-restart/** (**--state-dir**)
: The state directory, made by **/usr/lib/tmpfiles.d/safe-restart.conf** at boot: **lock/SERVICE.lock**
  (one operation per service at a time), **lineage/SERVICE.PID.json** (the IPC objects each master
  safe-restart started created: what **ipc reap** proves against before it removes anything),
  **SERVICE.stopping.json** (a stop under way), **samples/SERVICE.json** (samples of the master, for
  **doctor**) and
  **last-operation/SERVICE.json** (each service's last outcome, for **metrics**). A tmpfs: it ends with
  the boot whose processes it describes. safe-restart refuses a state directory that a user other
  than root or itself could write.

**/etc/safe-restart/NAME.toml** (**--service-dir**)
: Service files: how to start, stop, reload and test any other daemon (see
  /usr/share/doc/safe-restart/examples/service/myapp.toml).

**/etc/apache2/apache2.conf**, **/etc/nginx/nginx.conf**, **/etc/php/X.Y/fpm/php-fpm.conf** (**--conf**)
: The servers' configurations (Debian's paths by default): read for listeners, pidfiles and
  logs, and tested with the server's own config test before anything is signalled. Apache's
  **/etc/apache2/envvars** is sourced as apache2ctl sources it.

**/proc**, **/dev/shm**, SysV IPC
: Read to prove which processes and IPC objects belong to which server generation; **ipc reap
  --yes** removes only the objects proven orphaned.

**/etc/systemd/system/UNIT.d/safe-restart.conf**, **/run/systemd/system/UNIT.d/safe-restart.conf**
: Written by **safe-restart systemd install** (the second with **--runtime**): make **systemctl
  reload UNIT** a verified safe-restart reload.

**/etc/crontab**, **/etc/cron.d/**, **/var/spool/cron/crontabs/** (**/var/spool/cron/** on RHEL), **/etc/systemd/logind.conf** and its drop-ins
: Read by **doctor** (below **--root** when given): cron lines that reload or restart a web
  server at a fixed time with no random delay, and logind's RemoveIPC (it deletes a live
  server's semaphores).

**--textfile** *PATH*
: Written by **metrics**, atomically (a temporary file in the same directory, then a rename).

**/usr/share/safe-restart/**
: Snippets shipped inactive, enabled by one command each: the systemd drop-in, the logrotate
  postrotate change and the cron line (see README.Debian in /usr/share/doc/safe-restart).

**/usr/share/doc/safe-restart/examples/**
: Cron, logrotate, systemd, Prometheus, Ansible and deploy-script examples.
`

// manEnvironment is the ENVIRONMENT section of safe-restart(1).
const manEnvironment = `# ENVIRONMENT
safe-restart has no setting in the environment. **PATH** finds **systemctl**, **journalctl**,
**nsenter** and **setsid**, **run**'s *CMD* and the bare command names of service files;
**TMPDIR** is where it writes a start's output and php-fpm's checked configuration while it
works. Whether stderr is a terminal, not **TERM**, chooses the log format (**--log-format
auto**). **SAFE_RESTART_TRIAL_SPEC_FD** is internal: a trial start sets it for the copy of
safe-restart that runs as the trial's init.

The servers it starts inherit its environment, with these changes: Apache is started with
**/etc/apache2/envvars** sourced, as apache2ctl starts it; a start that hands listening sockets
over sets **NGINX** (nginx) or **FPM_SOCKETS** (php-fpm), as the servers' own binary upgrades do,
and removes inherited ones; a trial start removes the variables of systemd's protocols
(**NOTIFY_SOCKET**, **LISTEN_FDS**, **LISTEN_PID**, **LISTEN_FDNAMES**, **WATCHDOG_PID**,
**WATCHDOG_USEC**). The hooks of a restart (**--pre-stop**, **--post-start**) run under **/bin/sh -c**
with its environment and **SAFE_RESTART_SERVICE** and **SAFE_RESTART_PHASE** (pre-stop, post-start).
`

// manExitStatus is the EXIT STATUS section of command path's page: the
// command's own (exitStatuses), the operations' codes (exitCodes, those
// the operation can return), or the plain success, failure and usage
// error.
func manExitStatus(path string) string {
	var b strings.Builder
	b.WriteString("# EXIT STATUS\n")
	codes, isOp := operations[path]
	own, hasOwn := exitStatuses[path]
	switch {
	case hasOwn:
		b.WriteString(own)
	case isOp:
		for _, e := range exitCodes {
			if e.code <= codes {
				fmt.Fprintf(&b, "**%d**\n: %s\n\n", e.code, e.meaning)
			}
		}
	default:
		b.WriteString(plainExitStatus)
	}
	return b.String()
}

// operations are the commands whose exit codes are exitCodes, with the
// highest each returns: only a reload recovers (4).
var operations = map[string]int{"safe-restart": exitRecovered, "safe-restart reload": exitRecovered,
	"safe-restart restart": exitRefused, "safe-restart start": exitRefused, "safe-restart stop": exitRefused}

const plainExitStatus = "**0**\n: done\n\n**1**\n: failed; the error is logged\n\n**2**\n: usage error\n"

// configRefused is exit 3 of the commands that read a service's status:
// its config test runs first.
const configRefused = "\n**3**\n: the service's config test failed (quoted in the log)\n"

// exitStatuses are the exit codes of the commands that are no operation
// on a server, where they differ from plainExitStatus.
var exitStatuses = map[string]string{
	"safe-restart status": "**0**\n: a master runs; its state is printed\n\n" +
		"**1**\n: no master runs, or the status could not be read\n\n" +
		"**2**\n: usage or configuration error\n" + configRefused,
	"safe-restart doctor": "**0**\n: no risk found\n\n**1**\n: risks found, or the facts could not be read\n\n" +
		"**2**\n: usage error\n" + configRefused,
	"safe-restart metrics": "**0**\n: every fact was gathered and written\n\n" +
		"**1**\n: a service's status could not be read (the metrics are still written, with " +
		"safe_restart_status_success 0 for that service), or writing them failed\n\n**2**\n: usage error\n",
	"safe-restart run": "**0**\n: the child exited 0\n\n" +
		"**1**\n: nothing could start (the command was not found)\n\n" +
		"**2**\n: usage or configuration error\n\n" +
		"**3**\n: refused before the first start (the config test failed, the state directory cannot be written)\n\n" +
		"**N**\n: otherwise the child's last status, once a SIGTERM or SIGINT stopped it or safe-restart gave up " +
		"restarting it: its exit code, or 128+N when signal N ended it (at least 1 when safe-restart gave up " +
		"on a child that had exited 0)\n",
	"safe-restart ipc ls": "**0**\n: done\n\n**1**\n: the IPC objects or processes could not be read\n\n" +
		"**2**\n: usage error\n" + configRefused,
	"safe-restart ipc reap": "**0**\n: every orphan was removed (without **--yes**: the plan was printed)\n\n" +
		"**1**\n: an object could not be removed; each outcome is reported\n\n**2**\n: usage error\n" + configRefused,
	"safe-restart systemd install": "**0**\n: the drop-in was written and systemd reloaded (with **--dry-run**: printed)\n\n" +
		"**1**\n: writing it or reloading systemd failed\n\n**2**\n: usage error, or SERVICE has no unit\n\n" +
		"**3**\n: refused: the config test failed or systemd did not answer; nothing was written\n",
}

func newManCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages (safe-restart(1) and one per command) into DIR",
		Hidden: true, // for packaging: make man
		Args:   cobra.ExactArgs(1),
		RunE:   func(_ *cobra.Command, args []string) error { return writeManPages(root, args[0]) },
	}
}

// writeManPages writes one man page per available command of root into
// dir (safe-restart.1, safe-restart-reload.1, ...), dated by the build
// date, so that one commit gives the same pages on every machine.
// safe-restart(1) adds FILES and ENVIRONMENT; every page adds EXIT STATUS
// (manExitStatus).
func writeManPages(root *cobra.Command, dir string) error {
	header := &doc.GenManHeader{Section: "1", Source: "safe-restart " + build().Version, Manual: "safe-restart manual"}
	if t, err := time.Parse(time.RFC3339, build().BuildDate); err == nil {
		header.Date = &t
	}
	root.DisableAutoGenTag = true
	root.Long = rootLong
	root.InitDefaultVersionFlag() // cobra adds --version only as the root command runs
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
				if err := walk(sub); err != nil {
					return err
				}
			}
		}
		return writeManPage(c, *header, dir)
	}
	return walk(root)
}

// writeManPage writes c's page into dir, its sections after OPTIONS.
func writeManPage(c *cobra.Command, header doc.GenManHeader, dir string) error {
	var page bytes.Buffer
	if err := doc.GenMan(c, &header, &page); err != nil {
		return fmt.Errorf("man page of %s: %w", c.CommandPath(), err)
	}
	extra := manExitStatus(c.CommandPath())
	if !c.HasParent() {
		extra += manEnvironment + manFiles
	}
	// A title block first, as cobra's pages have, so that md2man renders
	// the headings as sections (.SH), not as a title.
	out := spliceSections(page.Bytes(), md2man.Render([]byte("% X 1\n"+extra)))
	path := filepath.Join(dir, strings.ReplaceAll(c.CommandPath(), " ", "-")+".1")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("man page of %s: %w", c.CommandPath(), err)
	}
	return nil
}

// spliceSections puts the sections of the rendered page sections (from
// its first .SH) into page before its EXAMPLE or SEE ALSO section, or at
// its end: the order of man-pages(7).
func spliceSections(page, sections []byte) []byte {
	if i := bytes.Index(sections, []byte(".SH ")); i >= 0 {
		sections = sections[i:]
	}
	at := len(page)
	for _, h := range []string{"\n.SH EXAMPLE\n", "\n.SH SEE ALSO\n"} {
		if i := bytes.Index(page, []byte(h)); i >= 0 && i+1 < at {
			at = i + 1
		}
	}
	return slices.Concat(page[:at], sections, page[at:])
}
