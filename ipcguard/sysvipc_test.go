package ipcguard

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The headers of /proc/sysvipc/{sem,shm,msg}, byte for byte as kernel 6.18
// prints them.
const (
	semHeader = "       key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime\n"
	shmHeader = "       key      shmid perms                  size  cpid  lpid nattch   uid   gid  cuid  cgid" +
		"      atime      dtime      ctime                   rss                  swap\n"
	msgHeader = "       key      msqid perms      cbytes       qnum lspid lrpid   uid   gid  cuid  cgid" +
		"      stime      rtime      ctime\n"
)

// fmtSemRow prints s as ipc/sem.c sysvipc_sem_proc_show does.
func fmtSemRow(s SemSet) string {
	return fmt.Sprintf("%10d %10d  %4o %10d %5d %5d %5d %5d %10d %10d\n",
		s.Key, s.ID, s.Perms, s.NSems, s.UID, s.GID, s.CUID, s.CGID, s.OTime, s.CTime)
}

// fmtShmRow prints s as ipc/shm.c sysvipc_shm_proc_show does (64-bit).
func fmtShmRow(s ShmSeg) string {
	return fmt.Sprintf("%10d %10d  %4o %21d %5d %5d  %5d %5d %5d %5d %5d %10d %10d %10d %21d %21d\n",
		s.Key, s.ID, s.Perms, s.Size, s.CPID, s.LPID, s.NAttch, s.UID, s.GID, s.CUID, s.CGID,
		s.ATime, s.DTime, s.CTime, s.RSS, s.Swap)
}

// fmtMsgRow prints q as ipc/msg.c sysvipc_msg_proc_show does.
func fmtMsgRow(q MsgQueue) string {
	return fmt.Sprintf("%10d %10d  %4o  %10d %10d %5d %5d %5d %5d %5d %5d %10d %10d %10d\n",
		q.Key, q.ID, q.Perms, q.CBytes, q.QNum, q.LSPID, q.LRPID, q.UID, q.GID, q.CUID, q.CGID,
		q.STime, q.RTime, q.CTime)
}

// apacheSem is a set as Apache's prefork MPM creates it (as root, then
// chowned to www-data).
func apacheSem(id int, otime, ctime int64) SemSet {
	return SemSet{Key: 0, ID: id, Perms: 0o600, NSems: 1, UID: 33, GID: 33, OTime: otime, CTime: ctime}
}

// readTestdata returns the content of testdata/name.
func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// checkErr fails t unless err matches want: nil for "", else an error
// wrapping ErrMalformed whose text contains want.
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && (!errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), want)):
		t.Fatalf("error %q: want ErrMalformed and text containing %q", err, want)
	}
}

var prefork = []SemSet{apacheSem(32768, 1700000500, 1700000000), apacheSem(32769, 1700000480, 1700000000)}

func TestParseSemTable(t *testing.T) {
	row := semHeader + "         0      32768   600          1    33    33     0     0 1700000500 1700000000\n"
	tests := []struct {
		name, file, data string
		want             []SemSet
		wantErr          string
	}{
		{name: "zero bytes", data: "", want: []SemSet{}},
		{name: "blank", data: "\n \n", want: []SemSet{}},
		{name: "header only", file: "sysvipc/empty.txt", want: []SemSet{}},
		{name: "apache prefork", file: "sysvipc/apache-prefork.txt", want: prefork},
		{name: "apache orphan", file: "sysvipc/apache-orphan.txt", want: append([]SemSet{
			apacheSem(0, 1699990100, 1699990000), apacheSem(1, 1699990090, 1699990000),
			apacheSem(2, 0, 1699995000), apacheSem(3, 1699995100, 1699995000)}, prefork...)},
		{name: "foreign keys", file: "sysvipc/foreign.txt", want: []SemSet{
			{Key: -2038172323, ID: 0, Perms: 0o644, NSems: 2, CTime: 1795437375},
			{Key: 282884688, ID: 1, Perms: 0o600, NSems: 1, UID: 1000, GID: 100, CUID: 1000, CGID: 100,
				OTime: 1795437400, CTime: 1795437375}}},
		{name: "no final newline", data: strings.TrimSuffix(row, "\n"), want: prefork[:1]},
		{name: "blank lines and CRLF", data: "\n" + strings.ReplaceAll(row, "\n", "\r\n\n"), want: prefork[:1]},
		{name: "columns by name", data: "zz semid key ctime otime perms nsems uid gid cuid cgid\n" +
			"x 32768 0 1700000000 1700000500 600 1 33 33 0 0\n", want: prefork[:1]},
		{name: "key extremes", data: semHeader + "-2147483648 1 600 1 0 0 0 0 0 0\n2147483647 2 600 1 0 0 0 0 0 0\n",
			want: []SemSet{{Key: -1 << 31, ID: 1, Perms: 0o600, NSems: 1}, {Key: 1<<31 - 1, ID: 2, Perms: 0o600, NSems: 1}}},
		{name: "malformed file", file: "sysvipc/malformed.txt", wantErr: "malformed.txt line 3: want 10 fields, got 9"},
		{name: "missing column", data: strings.Replace(row, "ctime", "", 1), wantErr: `line 1: header: no column "ctime"`},
		{name: "duplicate column", data: strings.Replace(row, "cuid", "uid", 1), wantErr: `duplicate column "uid"`},
		{name: "data without header", data: row[len(semHeader):], wantErr: "sem line 1: header"},
		{name: "header lacks key", data: strings.Replace(row, "key", "kee", 1), wantErr: `no column "key"`},
		{name: "extra field", data: strings.TrimSuffix(row, "\n") + " 7\n", wantErr: "line 2: want 10 fields, got 11"},
		{name: "negative id", data: semHeader + "0 -1 600 1 0 0 0 0 0 0\n", wantErr: `column semid: "-1"`},
		{name: "key overflow", data: semHeader + "2147483648 1 600 1 0 0 0 0 0 0\n", wantErr: "column key"},
		{name: "key underflow", data: semHeader + "-2147483649 1 600 1 0 0 0 0 0 0\n", wantErr: "column key"},
		{name: "bare minus key", data: semHeader + "- 1 600 1 0 0 0 0 0 0\n", wantErr: "column key"},
		{name: "perms not octal", data: semHeader + "0 1 680 1 0 0 0 0 0 0\n", wantErr: `column perms: "680" is not octal`},
		{name: "uid overflow", data: semHeader + "0 1 600 1 4294967296 0 0 0 0 0\n", wantErr: "column uid"},
		{name: "plus sign", data: semHeader + "0 +1 600 1 0 0 0 0 0 0\n", wantErr: "column semid"},
		{name: "hex time", data: semHeader + "0 1 600 1 0 0 0 0 0x10 0\n", wantErr: "column otime"},
		{name: "time overflow", data: semHeader + "0 1 600 1 0 0 0 0 9223372036854775808 0\n", wantErr: "column otime"},
		{name: "second bad row named", data: row + "0 1 600 1 0 0 0 0 0\n", wantErr: "sem line 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, data := "/proc/sysvipc/sem", []byte(tt.data)
			if tt.file != "" {
				name, data = filepath.Join("testdata", tt.file), readTestdata(t, tt.file)
			}
			got, err := parseSemTable(name, data)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseShmTable(t *testing.T) {
	dest := ShmSeg{ID: 32769, Perms: 0o1600, Size: 67108864, CPID: 812, LPID: 4242, NAttch: 2,
		UID: 33, GID: 33, ATime: 1700000100, DTime: 1700000090, CTime: 1700000000, RSS: 8192, Swap: 4096}
	tests := []struct {
		name, file, data string
		want             []ShmSeg
		wantErr          string
	}{
		{name: "header only", file: "sysvipc/shm-empty.txt", want: []ShmSeg{}},
		{name: "two segments", file: "sysvipc/shm.txt", want: []ShmSeg{
			{Key: 235444327, ID: 0, Perms: 0o644, Size: 4096, CPID: 12495, CTime: 1795437375}, dest}},
		{name: "round trip", data: shmHeader + fmtShmRow(dest), want: []ShmSeg{dest}},
		{name: "huge size", data: shmHeader + strings.Replace(fmtShmRow(dest), "67108864", "18446744073709551615", 1),
			want: []ShmSeg{func() ShmSeg { s := dest; s.Size = 1<<64 - 1; return s }()}},
		{name: "size overflow", data: shmHeader + strings.Replace(fmtShmRow(dest), "67108864", "18446744073709551616", 1),
			wantErr: "column size"},
		{name: "missing swap", data: strings.Replace(shmHeader, "swap", "", 1), wantErr: `no column "swap"`},
		{name: "short row", data: shmHeader + "0 1 600 4096\n", wantErr: "shm line 2: want 16 fields, got 4"},
		{name: "negative pid", data: shmHeader + strings.Replace(fmtShmRow(dest), "  812", " -812", 1), wantErr: "column cpid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, data := "/proc/sysvipc/shm", []byte(tt.data)
			if tt.file != "" {
				name, data = filepath.Join("testdata", tt.file), readTestdata(t, tt.file)
			}
			got, err := parseShmTable(name, data)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseMsgTable(t *testing.T) {
	q := MsgQueue{Key: -1, ID: 98304, Perms: 0o660, CBytes: 512, QNum: 3, LSPID: 4100, LRPID: 4101,
		UID: 33, GID: 33, STime: 1700000200, RTime: 1700000150, CTime: 1700000000}
	tests := []struct {
		name, file, data string
		want             []MsgQueue
		wantErr          string
	}{
		{name: "header only", file: "sysvipc/msg-empty.txt", want: []MsgQueue{}},
		{name: "two queues", file: "sysvipc/msg.txt", want: []MsgQueue{
			{Key: 567338992, ID: 0, Perms: 0o644, CTime: 1795437375}, q}},
		{name: "round trip", data: msgHeader + fmtMsgRow(q), want: []MsgQueue{q}},
		{name: "sem header", data: semHeader, wantErr: `no column "msqid"`},
		{name: "bad qnum", data: msgHeader + strings.Replace(fmtMsgRow(q), "  3 ", " 3x ", 1), wantErr: `column qnum: "3x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, data := "/proc/sysvipc/msg", []byte(tt.data)
			if tt.file != "" {
				name, data = filepath.Join("testdata", tt.file), readTestdata(t, tt.file)
			}
			got, err := parseMsgTable(name, data)
			checkErr(t, err, tt.wantErr)
			if tt.wantErr == "" && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestReadSysVTables(t *testing.T) {
	root := filepath.Join("testdata", "proc", "good")
	sems, err := ReadSemTable(root)
	if err != nil || !reflect.DeepEqual(sems, prefork) {
		t.Errorf("ReadSemTable = %+v, %v; want %+v", sems, err, prefork)
	}
	if shm, err := ReadShmTable(root); err != nil || len(shm) != 2 {
		t.Errorf("ReadShmTable = %+v, %v; want 2 segments", shm, err)
	}
	if msg, err := ReadMsgTable(root); err != nil || len(msg) != 2 {
		t.Errorf("ReadMsgTable = %+v, %v; want 2 queues", msg, err)
	}
	if _, err := ReadSemTable(t.TempDir()); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "read sem table") {
		t.Errorf("ReadSemTable(empty dir) error = %v, want ErrNotExist naming the operation", err)
	}
}

func TestReadSysVTablesBadFile(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sysvipc"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "sysvipc", "sem")
	if err := os.WriteFile(path, readTestdata(t, "sysvipc/malformed.txt"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadSemTable(root)
	checkErr(t, err, path+" line 3")
}

func TestReadSysVTablesReal(t *testing.T) {
	if _, err := os.Stat("/proc/sysvipc/sem"); err != nil {
		t.Skip("no /proc/sysvipc:", err)
	}
	if _, err := ReadSemTable("/proc"); err != nil {
		t.Error(err)
	}
	if _, err := ReadShmTable("/proc"); err != nil {
		t.Error(err)
	}
	if _, err := ReadMsgTable("/proc"); err != nil {
		t.Error(err)
	}
}

// semTableOf returns the /proc/sysvipc/sem text of n synthetic sets.
func semTableOf(n int) []byte {
	var b strings.Builder
	b.WriteString(semHeader)
	for i := range n {
		b.WriteString(fmtSemRow(SemSet{Key: int32(i * 7919), ID: i, Perms: 0o600, NSems: 1 + i%250,
			UID: 33, GID: 33, OTime: 1700000000 + int64(i), CTime: 1700000000}))
	}
	return []byte(b.String())
}

func BenchmarkParseSemTable(b *testing.B) {
	data := semTableOf(32000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		sets, err := parseSemTable("sem", data)
		if err != nil || len(sets) != 32000 {
			b.Fatal(len(sets), err)
		}
	}
}

func TestParseDigits(t *testing.T) {
	const u64, u32 = 1<<64 - 1, 1<<32 - 1
	tests := []struct {
		in        string
		base, max uint64
		want      uint64
		ok        bool
	}{
		{"0", 10, u64, 0, true},
		{"", 10, u64, 0, false},
		{"18446744073709551615", 10, u64, u64, true},
		{"18446744073709551616", 10, u64, 0, false},
		{"99999999999999999999", 10, u64, 0, false},
		{"0000000000000000000000042", 10, u64, 42, true},
		{"9999999999999999999", 10, u64, 9999999999999999999, true},
		{"2147483647", 10, 1<<31 - 1, 1<<31 - 1, true},
		{"2147483648", 10, 1<<31 - 1, 0, false},
		{"37777777777", 8, u32, u32, true},
		{"40000000000", 8, u32, 0, false},
		{"1777777777777777777777", 8, u64, u64, true},
		{"2000000000000000000000", 8, u64, 0, false},
		{"8", 8, u32, 0, false},
		{"-1", 10, u64, 0, false},
		{"1 ", 10, u64, 0, false},
		{"١", 10, u64, 0, false},
	}
	for _, tt := range tests {
		got, ok := parseDigits(tt.in, tt.base, tt.max)
		gotB, okB := parseDigits([]byte(tt.in), tt.base, tt.max)
		if got != tt.want || ok != tt.ok || gotB != got || okB != ok {
			t.Errorf("parseDigits(%q, %d, %d) = %d, %v (bytes: %d, %v); want %d, %v",
				tt.in, tt.base, tt.max, got, ok, gotB, okB, tt.want, tt.ok)
		}
	}
}
