package systemd

import "errors"

// ErrNoUnit reports a systemd operation on a server that has no unit (or
// on a host where systemd is not PID 1).
var ErrNoUnit = errors.New("no systemd unit")

// ErrUnitModel reports a server that serves but that its systemd unit does
// not know as it is (README.md invariant 8): the unit is not active, its
// MainPID is not the master, or a process of the server runs outside the
// unit's control group.
var ErrUnitModel = errors.New("systemd's view of the service is wrong")

// ErrServiceManager reports that systemd could not be asked about a unit
// (systemctl missing or failing): nothing was touched.
var ErrServiceManager = errors.New("cannot read the systemd unit")
