package ipcguard

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// statLine returns a /proc/PID/stat line of 52 fields as kernel 6.18 prints it.
func statLine(pid, comm, state, ppid, start string) string {
	return pid + " (" + comm + ") " + state + " " + ppid + " 812 812 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 " +
		start + " 41213952 2760 18446744073709551615" + strings.Repeat(" 0", 29) + "\n"
}

func TestParseStat(t *testing.T) {
	catLine := "12516 (cat) R 12514 12514 8468 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 99511 3133440 394 " +
		"18446744073709551615 94002370818048 94002370837929 140730671920896 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 " +
		"94002370853936 94002370855552 94002423644160 140730671925954 140730671925974 140730671925974 140730671927275 0\n"
	tests := []struct {
		name, data string
		want       Proc
		wantErr    string
	}{
		{name: "cat", data: catLine, want: Proc{PID: 12516, PPID: 12514, State: 'R', Comm: "cat", StartTicks: 99511}},
		{name: "kthreadd", data: "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 24 0 0 18446744073709551615 0 0",
			want: Proc{PID: 2, State: 'S', Comm: "kthreadd", StartTicks: 24}},
		{name: "runc ugly comm", data: statLine("900", "((ugly )pr()cess(", "R", "1", "200000"),
			want: Proc{PID: 900, PPID: 1, State: 'R', Comm: "((ugly )pr()cess(", StartTicks: 200000}},
		{name: "comm mimics fields", data: statLine("7", "x) Z 99 1 1 0 -1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "S", "3", "40"),
			want: Proc{PID: 7, PPID: 3, State: 'S', Comm: "x) Z 99 1 1 0 -1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", StartTicks: 40}},
		{name: "newline in comm", data: statLine("8", "a\nb", "S", "1", "5"),
			want: Proc{PID: 8, PPID: 1, State: 'S', Comm: "a\nb", StartTicks: 5}},
		{name: "empty comm", data: statLine("9", "", "S", "1", "5"), want: Proc{PID: 9, PPID: 1, State: 'S', StartTicks: 5}},
		{name: "zombie", data: statLine("814", "apache2", "Z", "812", "150020"),
			want: Proc{PID: 814, PPID: 812, State: 'Z', Comm: "apache2", StartTicks: 150020}},
		{name: "max starttime", data: statLine("9", "x", "S", "1", "18446744073709551615"),
			want: Proc{PID: 9, PPID: 1, State: 'S', Comm: "x", StartTicks: 1<<64 - 1}},
		{name: "exactly 22 fields", data: "5 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 1 0 77",
			want: Proc{PID: 5, PPID: 1, State: 'S', Comm: "x", StartTicks: 77}},
		{name: "empty", data: "", wantErr: "line 1: no \"PID (comm)\""},
		{name: "no parens", data: "12516 cat R 12514", wantErr: "line 1: no \"PID (comm)\""},
		{name: "only close paren", data: "12516 cat) R 12514", wantErr: "no \"PID (comm)\""},
		{name: "no space before comm", data: "12516(cat) R 1 " + strings.Repeat("0 ", 20), wantErr: "no \"PID (comm)\""},
		{name: "pid zero", data: statLine("0", "x", "S", "1", "5"), wantErr: `bad pid "0"`},
		{name: "pid negative", data: statLine("-4", "x", "S", "1", "5"), wantErr: `bad pid "-4"`},
		{name: "pid overflow", data: statLine("2147483648", "x", "S", "1", "5"), wantErr: "bad pid"},
		{name: "truncated after comm", data: "12516 (cat)", wantErr: "no space after comm"},
		{name: "truncated", data: "42 (truncated) S 1 42 42 0 -1 4194560 100\n", wantErr: "want at least 22 fields, got 10"},
		{name: "21 fields", data: "5 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 0 0 1 0", wantErr: "got 21"},
		{name: "digit state", data: statLine("9", "x", "1", "1", "5"), wantErr: `bad state "1"`},
		{name: "long state", data: statLine("9", "x", "SS", "1", "5"), wantErr: `bad state "SS"`},
		{name: "negative ppid", data: statLine("9", "x", "S", "-1", "5"), wantErr: `bad ppid "-1"`},
		{name: "bad starttime", data: statLine("9", "x", "S", "1", "5x"), wantErr: `bad starttime "5x"`},
		{name: "starttime overflow", data: statLine("9", "x", "S", "1", "18446744073709551616"), wantErr: "bad starttime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.data)
			checkErr(t, err, tt.wantErr)
			got.Session = 0 // TestParseStatSession checks it
			if tt.wantErr == "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseStatusUID(t *testing.T) {
	status := string(readTestdata(t, "proc/good/813/status"))
	tests := []struct {
		name, data string
		want       uint32
		wantErr    string
	}{
		{name: "apache worker", data: status, want: 33},
		{name: "root", data: "Name:\tcat\nUid:\t0\t0\t0\t0\n", want: 0},
		{name: "no newline", data: "Uid:\t4294967295\t0\t0\t0", want: 1<<32 - 1},
		{name: "setuid", data: "Uid:\t1000\t0\t0\t0\n", want: 1000},
		{name: "no Uid line", data: "Name:\tcat\nGid:\t0\t0\t0\t0\n", wantErr: "no Uid: line"},
		{name: "empty", data: "", wantErr: "no Uid: line"},
		{name: "indented Uid is not the line", data: "Name:\tx\n Uid:\t5\n", wantErr: "no Uid: line"},
		{name: "empty Uid", data: "Name:\tcat\nUid:\n", wantErr: "line 2: empty Uid: line"},
		{name: "bad uid", data: "Name:\tcat\nUmask:\t0022\nUid:\tx\t0\t0\t0\n", wantErr: `line 3: bad real uid "x"`},
		{name: "uid overflow", data: "Uid:\t4294967296\t0\t0\t0\n", wantErr: "line 1: bad real uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusUID(tt.data)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == "" && got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestParseBootTime(t *testing.T) {
	tests := []struct {
		name, data string
		want       time.Time
		wantErr    string
	}{
		{name: "proc stat", data: string(readTestdata(t, "proc/good/stat")), want: time.Unix(1700000000, 0)},
		{name: "no newline", data: "btime 1795436383", want: time.Unix(1795436383, 0)},
		{name: "missing", data: "cpu 1 2 3\nctxt 5\n", wantErr: "no btime line"},
		{name: "not btime", data: "btimes 5\n", wantErr: "no btime line"},
		{name: "empty value", data: "cpu 1\nbtime \n", wantErr: "line 2: want one number after btime, got 0"},
		{name: "two values", data: "btime 1 2\n", wantErr: "got 2 fields"},
		{name: "negative", data: "btime -1\n", wantErr: `bad btime "-1"`},
		{name: "overflow", data: "btime 9223372036854775808\n", wantErr: "bad btime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBootTime(tt.data)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == "" && !got.Equal(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestReadProcTableFake(t *testing.T) {
	before := time.Now()
	tab, err := ReadProcTable(filepath.Join("testdata", "proc", "good"))
	if err != nil {
		t.Fatal(err)
	}
	boot := time.Unix(1700000000, 0)
	if !tab.Boot.Equal(boot) || tab.Taken.Before(before) {
		t.Errorf("Boot = %v, Taken = %v; want %v and after %v", tab.Boot, tab.Taken, boot, before)
	}
	want := map[int]Proc{
		1:   {PID: 1, State: 'S', Comm: "systemd", StartTicks: 5, Start: boot.Add(50 * time.Millisecond)},
		2:   {PID: 2, State: 'S', Comm: "kthreadd", StartTicks: 5, Start: boot.Add(50 * time.Millisecond)},
		812: {PID: 812, PPID: 1, State: 'S', Comm: "apache2", StartTicks: 150000, Start: boot.Add(1500 * time.Second)},
		813: {PID: 813, PPID: 812, State: 'S', Comm: "apache2", StartTicks: 150010, Start: boot.Add(1500100 * time.Millisecond), UID: 33},
		814: {PID: 814, PPID: 812, State: 'Z', Comm: "apache2", StartTicks: 150020, Start: boot.Add(1500200 * time.Millisecond), UID: 33},
		900: {PID: 900, PPID: 1, State: 'R', Comm: "((ugly )pr()cess(", StartTicks: 200000, Start: boot.Add(2000 * time.Second), UID: 1000},
	}
	for pid, p := range want {
		p.Threads = 1
		p.Session = tab.ByPID[pid].Session // TestParseStatSession checks it
		want[pid] = p
	}
	if !reflect.DeepEqual(tab.ByPID, want) {
		t.Errorf("ByPID:\ngot  %+v\nwant %+v", tab.ByPID, want)
	}
}

func TestReadProcTableMalformed(t *testing.T) {
	root := filepath.Join("testdata", "proc", "malformed")
	_, err := ReadProcTable(root)
	checkErr(t, err, filepath.Join(root, "42", "stat")+": malformed input: line 1: want at least 22 fields")
}

// writeFiles creates each path (relative to root) with its content; a
// content starting with "->" makes a symlink to the rest instead.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for path, content := range files {
		path = filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, path)
		} else {
			err = os.WriteFile(path, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadProcTableVanishedAndExe(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"stat":       "btime 1700000000\n",
		"10/stat":    statLine("10", "apache2", "S", "1", "100"),
		"10/status":  "Uid:\t0\t0\t0\t0\nThreads:\t1\n",
		"10/exe":     "->/usr/sbin/apache2 (deleted)",
		"11/stat":    statLine("11", "gone", "S", "1", "100"), // vanished before status was read
		"12/status":  "Uid:\t0\t0\t0\t0\nThreads:\t1\n",       // vanished before stat was read
		"13/stat":    statLine("13", "oops", "S", "1", "100"),
		"13/status":  "Uid:\t0\t0\t0\t0\nThreads:\t1\n",
		"self/stat":  "not a pid directory",
		"007x/stat":  "not a pid directory",
		"sysvipc/x":  "",
		"0/ignored":  "pid 0 does not exist",
		"13/cmdline": "",
	})
	tab, err := ReadProcTable(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(tab.ByPID); got != 2 {
		t.Errorf("got %d processes, want 2 (10 and 13): %+v", got, tab.ByPID)
	}
	if p := tab.ByPID[10]; p.Exe != "/usr/sbin/apache2 (deleted)" {
		t.Errorf("pid 10 Exe = %q", p.Exe)
	}
	if p, ok := tab.ByPID[13]; !ok || p.Exe != "" {
		t.Errorf("pid 13 = %+v, %v; want present with empty Exe", p, ok)
	}
	checkReadProc(t, root, tab, 11, 12, 14)
}

func TestReadProcTablePIDMismatch(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"stat": "btime 1700000000\n", "14/status": "Uid:\t0\t0\t0\t0\nThreads:\t1\n", "14/stat": statLine("15", "x", "S", "1", "1"),
	})
	_, err := ReadProcTable(root)
	checkErr(t, err, filepath.Join(root, "14", "stat")+": malformed input: line 1: pid 15")
	_, err = ReadProc(root, 14)
	checkErr(t, err, "read process 14: "+filepath.Join(root, "14", "stat")+": malformed input: line 1: pid 15")
	if errors.Is(err, ErrNoProcess) {
		t.Errorf("pid mismatch %v wraps ErrNoProcess", err)
	}
}

func TestReadProcTableBadBoot(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"stat": "cpu 1 2\n"})
	_, err := ReadProcTable(root)
	checkErr(t, err, filepath.Join(root, "stat")+": malformed input: no btime line")
	_, err = ReadProc(root, 1)
	checkErr(t, err, "read process 1: "+filepath.Join(root, "stat")+": malformed input: no btime line")
}

func TestReadProcTableSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc:", err)
	}
	tab, err := ReadProcTable("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self, ok := tab.Live(os.Getpid())
	if !ok {
		t.Fatalf("pid %d not in the table", os.Getpid())
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if self.PPID != os.Getppid() || self.Exe != exe || self.UID != uint32(os.Getuid()) {
		t.Errorf("self = %+v; want PPID %d, Exe %q, UID %d", self, os.Getppid(), exe, os.Getuid())
	}
	if self.Comm != filepath.Base(exe)[:min(len(filepath.Base(exe)), commLen)] {
		t.Errorf("self.Comm = %q, exe %q", self.Comm, exe)
	}
	if self.Start.Before(tab.Boot) || self.Start.After(tab.Taken.Add(time.Second)) {
		t.Errorf("self.Start = %v, want between boot %v and scan %v", self.Start, tab.Boot, tab.Taken)
	}
	if _, ok := tab.ByPID[os.Getppid()]; !ok {
		t.Errorf("parent %d not in the table", os.Getppid())
	}
	if got := tab.ByExe(exe); !containsPID(got, os.Getpid()) {
		t.Errorf("ByExe(%q) = %+v lacks pid %d", exe, got, os.Getpid())
	}
}

// containsPID reports whether ps holds pid.
func containsPID(ps []Proc, pid int) bool {
	for _, p := range ps {
		if p.PID == pid {
			return true
		}
	}
	return false
}

func TestByExe(t *testing.T) {
	const exe = "/usr/sbin/apache2"
	long := "/opt/x/bin/a-very-long-daemon-name"
	mk := func(pid int, state byte, comm, exe string) Proc {
		return Proc{PID: pid, State: state, Comm: comm, Exe: exe}
	}
	tab := ProcTable{ByPID: map[int]Proc{}}
	for _, p := range []Proc{
		mk(30, 'S', "apache2", exe),
		mk(10, 'S', "apache2", exe),
		mk(20, 'S', "apache2", exe+" (deleted)"),
		mk(40, 'Z', "apache2", exe),
		mk(45, 'X', "apache2", ""),
		mk(50, 'S', "apache2", ""),
		mk(60, 'S', "apache2", "/usr/local/sbin/apache2"),
		mk(70, 'S', "nginx", ""),
		mk(80, 'S', "a-very-long-dae", ""),
		mk(90, 'S', "a-very-long-daemon-name", ""),
		mk(95, 'S', "", ""),
	} {
		tab.ByPID[p.PID] = p
	}
	pids := func(ps []Proc) []int {
		var out []int
		for _, p := range ps {
			out = append(out, p.PID)
		}
		return out
	}
	for _, tt := range []struct {
		exe  string
		want []int
	}{
		{exe, []int{10, 20, 30, 50, 60}}, // 60: another apache2 build, same comm
		{long, []int{80}},
		{"/usr/sbin/nginx", []int{70}},
		{"/usr/bin/none", nil},
		{"", nil},
	} {
		if got := pids(tab.ByExe(tt.exe)); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ByExe(%q) = %v, want %v", tt.exe, got, tt.want)
		}
	}
}

// checkReadProc checks that ReadProc reads every process of tab, read from
// root, as ReadProcTable did, and that the pids of gone are ErrNoProcess.
func checkReadProc(t *testing.T, root string, tab ProcTable, gone ...int) {
	t.Helper()
	for pid, want := range tab.ByPID {
		got, err := ReadProc(root, pid)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ReadProc(%d) = %+v, %v; want %+v as in ReadProcTable", pid, got, err, want)
		}
	}
	for _, pid := range gone {
		_, err := ReadProc(root, pid)
		if !errors.Is(err, ErrNoProcess) || !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrMalformed) {
			t.Errorf("ReadProc(%d): %v; want ErrNoProcess wrapping fs.ErrNotExist", pid, err)
		}
	}
}

func TestReadProcFake(t *testing.T) {
	root := filepath.Join("testdata", "proc", "good")
	tab, err := ReadProcTable(root)
	if err != nil {
		t.Fatal(err)
	}
	checkReadProc(t, root, tab, 3, 0, -1)
	_, err = ReadProc(filepath.Join("testdata", "proc", "malformed"), 42)
	checkErr(t, err, "read process 42: "+filepath.Join("testdata", "proc", "malformed", "42", "stat")+": malformed input: line 1: want at least 22 fields")
}

// TestByExeResolvesSymlinks: the kernel shows /proc/PID/exe resolved, so a
// signature naming the binary through a symlink must still find it.
func TestByExeResolvesSymlinks(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "usr-sbin-apache2")
	if err := os.WriteFile(real, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "apache2")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	tab := ProcTable{ByPID: map[int]Proc{7: {PID: 7, State: 'S', Comm: "usr-sbin-apache", Exe: real}}}
	if got := tab.ByExe(link); len(got) != 1 || got[0].PID != 7 {
		t.Fatalf("ByExe(%s) = %+v, want pid 7 running %s", link, got, real)
	}
}

func TestParseStatSession(t *testing.T) {
	// pid 4242, comm, state, ppid 1, pgrp 4242, session 4242 (a setsid master)
	line := "4242 (apache2) S 1 4242 4242 0 -1 4194624 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0"
	p, err := parseStat(line)
	if err != nil || p.Session != 4242 || p.PPID != 1 || p.StartTicks != 12345 {
		t.Fatalf("parseStat = %+v, %v; want session 4242", p, err)
	}
	if _, err := parseStat(strings.Replace(line, "4242 4242 0", "4242 x 0", 1)); err == nil || !strings.Contains(err.Error(), "bad session") {
		t.Fatalf("bad session accepted: %v", err)
	}
	// A process being reaped shows session -1: no session of its own.
	if p, err := parseStat(strings.Replace(line, "4242 4242 0", "4242 -1 0", 1)); err != nil || p.Session != 0 {
		t.Fatalf("parseStat of a session -1 = %+v, %v; want session 0", p, err)
	}
}
