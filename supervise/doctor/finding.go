package doctor

// Severity says how soon a finding can take a service down.
type Severity string

// The severities.
const (
	// Critical: the next start, reload or logout can take the service down,
	// or it already failed (a fatal log line).
	Critical Severity = "critical"
	// Warning: a condition that ends in an outage if left alone.
	Warning Severity = "warning"
)

// Finding is one known risk found on this machine, with the facts that
// show it and what removes it.
type Finding struct {
	Check    string   `json:"check"`             // the check's name, e.g. "logind-removeipc"
	Service  string   `json:"service,omitempty"` // "" for a machine-wide finding
	Severity Severity `json:"severity"`
	Summary  string   `json:"summary"`
	Evidence []string `json:"evidence"`
	Fix      string   `json:"fix"`
}
