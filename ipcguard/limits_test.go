package ipcguard

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestParseSemLimits(t *testing.T) {
	tests := []struct {
		name, data string
		want       [4]int
		wantErr    string
	}{
		{name: "kernel default", data: "32000\t1024000000\t500\t32000\n", want: [4]int{32000, 1024000000, 500, 32000}},
		{name: "old default", data: "250\t32000\t32\t128\n", want: [4]int{250, 32000, 32, 128}},
		{name: "spaces, no newline", data: "250 32000  32 128", want: [4]int{250, 32000, 32, 128}},
		{name: "max int", data: "9223372036854775807\t1\t2\t3\n", want: [4]int{1<<63 - 1, 1, 2, 3}},
		{name: "empty", data: "", wantErr: "sem line 1: want 4 fields, got 0"},
		{name: "three", data: "250\t32000\t32\n", wantErr: "want 4 fields, got 3"},
		{name: "five", data: "250\t32000\t32\t128\t1\n", wantErr: "want 4 fields, got 5"},
		{name: "negative", data: "250\t-1\t32\t128\n", wantErr: `field 2: "-1"`},
		{name: "word", data: "250\t32000\tx\t128\n", wantErr: `field 3: "x"`},
		{name: "overflow", data: "250\t32000\t32\t9223372036854775808\n", wantErr: "field 4"},
		{name: "two lines", data: "250\t32000\t32\t128\n1\n", wantErr: "want one line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [4]int
			var err error
			got[0], got[1], got[2], got[3], err = parseSemLimits("/proc/sys/kernel/sem", []byte(tt.data))
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == "" && got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseLimit(t *testing.T) {
	if n, err := parseLimit("shmmni", []byte("4096\n")); n != 4096 || err != nil {
		t.Errorf("parseLimit(4096) = %d, %v", n, err)
	}
	_, err := parseLimit("/proc/sys/kernel/shmmni", []byte("4096 1\n"))
	checkErr(t, err, "/proc/sys/kernel/shmmni line 1: want 1 fields, got 2")
}

func TestReadLimits(t *testing.T) {
	got, err := ReadLimits(filepath.Join("testdata", "proc", "good"))
	want := Limits{SEMMSL: 32000, SEMMNS: 1024000000, SEMOPM: 500, SEMMNI: 32000, SHMMNI: 4096, MSGMNI: 32000}
	if err != nil || got != want {
		t.Errorf("ReadLimits = %+v, %v; want %+v", got, err, want)
	}
	if _, err := ReadLimits(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadLimits(empty dir) error = %v, want ErrNotExist", err)
	}
}

func TestReadLimitsMalformed(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "sys", "kernel")
	for name, data := range map[string]string{"sem": "250\t32000\t32\t128\n", "shmmni": "4096\n", "msgmni": "many\n"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := ReadLimits(root)
	checkErr(t, err, filepath.Join(dir, "msgmni")+" line 1")
}

func TestReadLimitsReal(t *testing.T) {
	if _, err := os.Stat("/proc/sys/kernel/sem"); err != nil {
		t.Skip("no /proc/sys/kernel/sem:", err)
	}
	l, err := ReadLimits("/proc")
	if err != nil || l.SEMMNI <= 0 || l.SEMMSL <= 0 || l.SHMMNI <= 0 || l.MSGMNI <= 0 {
		t.Errorf("ReadLimits(/proc) = %+v, %v", l, err)
	}
}
