package growth

import "testing"

// TestSamplesBounded: the history keeps the newest maxSamples, and a bad
// service name is refused.
func TestSamplesBounded(t *testing.T) {
	dir := t.TempDir()
	for i := range maxSamples + 5 {
		if err := RecordSample(dir, "apache2", Sample{Reloads: i}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := LoadSamples(dir, "apache2")
	if err != nil || len(got) != maxSamples || got[0].Reloads != 5 || got[len(got)-1].Reloads != maxSamples+4 {
		t.Fatalf("%d samples, first %+v, err %v", len(got), got[0], err)
	}
	if err := RecordSample(dir, "../x", Sample{}); err == nil {
		t.Fatal("../x accepted as a service name")
	}
}
