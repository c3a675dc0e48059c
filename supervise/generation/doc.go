// Package generation reads what a server's serving generation runs against
// what is on disk, and which older generation still drains.
//
// A generation is what the master made of its configuration the last time
// it read it: at its start, and at each reload. Read reports when that was
// (the master's error log says so for Apache and php-fpm, nginx's
// youngest worker not draining bounds it, else the master's start), the files it loaded that
// changed after (configuration, includes, certificates and keys), the code
// it runs that was replaced on disk (its binary, libraries and modules, by
// /proc/PID/exe and /proc/PID/maps), the certificate each TLS listener
// serves (by a TLS handshake) against the files that hold one for the
// same name, and the processes of an older generation still alive.
//
// It changes nothing, and each fact it cannot read is named in
// Report.Unread rather than failing the rest.
package generation
