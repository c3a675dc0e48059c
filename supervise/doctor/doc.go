// Package doctor finds, on this machine, the known ways a web server's
// next start, reload or logout goes wrong, with the facts that show each
// and what removes it (Run): SysV semaphore usage against the kernel's
// limits, reload cron lines without jitter, logind's RemoveIPC against
// Apache's SysV mutexes, pthread keys and php-fpm memory that keep
// growing (from supervise/growth's samples), fatal and OOM lines in the
// logs, pidfiles, orphans and systemd units that disagree with the
// running master.
//
// It sits on top: it imports supervise (ReadStatus), supervise/server (the
// profiles), supervise/growth, supervise/proc and ipcguard; nothing under
// supervise imports it.
package doctor
