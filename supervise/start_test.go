package supervise

import (
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/safe-restart/safe-restart/supervise/server"
)

// TestTrialOptions: every option of the trial is the start's option of the
// same name (a field added to trial.Options and not carried over would
// run the trial with its zero value).
func TestTrialOptions(t *testing.T) {
	st := StartOptions{Profile: server.Profile{Name: "apache2"}, Conf: "/etc/x.conf", ProcRoot: "/p", Timeout: time.Minute,
		NoTrial: true, Log: zerolog.Nop().Level(zerolog.WarnLevel)}
	got := reflect.ValueOf(st.trialOptions())
	want := reflect.ValueOf(st)
	for i := range got.NumField() {
		name := got.Type().Field(i).Name
		f := want.FieldByName(name)
		if !f.IsValid() {
			t.Errorf("trial.Options.%s has no StartOptions field of that name", name)
			continue
		}
		if f.IsZero() {
			t.Errorf("StartOptions.%s is zero in this test: give it a value", name)
		}
		if got.Field(i).Type() == reflect.TypeOf(zerolog.Logger{}) {
			continue // a logger compares by its writer: checked by level below
		}
		if !reflect.DeepEqual(got.Field(i).Interface(), f.Interface()) {
			t.Errorf("trial.Options.%s = %v, want the start's %v", name, got.Field(i).Interface(), f.Interface())
		}
	}
	if l := st.trialOptions().Log; l.GetLevel() != zerolog.WarnLevel {
		t.Errorf("trial.Options.Log has level %v, want the start's logger (warn)", l.GetLevel())
	}
}
