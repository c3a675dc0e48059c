package supervise

import "context"

// RestartReport is what the stop and the start of a restart did.
type RestartReport struct {
	Stop  StopReport  `json:"stop"`
	Start StartReport `json:"start"`
}

// Restart runs the config test first (a failure returns a
// *ConfigTestError and leaves the running server untouched), then Stop and
// Start with the run config that test read. s and st must name the same
// profile and config; st's are used.
func Restart(ctx context.Context, s StopOptions, st StartOptions) (RestartReport, error) {
	var rep RestartReport
	sig, rc, err := IPCSignature(ctx, st.Profile, st.Conf)
	if err != nil {
		return rep, err
	}
	s.Profile, s.Conf = st.Profile, st.Conf
	if rep.Stop, err = s.stop(ctx, sig, rc); err != nil {
		return rep, err
	}
	rep.Start, err = st.start(ctx, sig, rc)
	return rep, err
}
