// Package packaging holds no code: its tests build the Debian packages and
// the release (make deb, make release) and check them as an operator gets
// them. TestRelease: two builds of one commit give the same bytes, and
// lintian finds nothing. TestInstall: the package, installed with dpkg -i
// (and with apt) into an overlay of this machine's root in private
// namespaces, gives a working safe-restart, its man pages and completions,
// and its purge leaves nothing but dpkg's records. TestGoInstall: go
// install ...@VERSION from a module proxy reports that version.
//
// The files of the package (nfpm.yaml, maintainer scripts, tmpfiles.d,
// README.Debian) are in this directory beside the tests.
package packaging
