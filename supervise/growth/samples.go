package growth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/safe-restart/safe-restart/internal/atomicfile"
	"github.com/safe-restart/safe-restart/ipcguard"
	"github.com/safe-restart/safe-restart/supervise/proc"
)

// Sample is one observation of a running master, recorded in the state
// directory each time status, reload or doctor runs. A risk that grows
// (pthread keys per reload, a worker's memory) shows only between
// observations of the same master: doctor compares them.
type Sample struct {
	Taken  time.Time        `json:"taken"`
	Master ipcguard.ProcKey `json:"master"`
	// Reloads is how many reloads the master had logged, in its error log
	// and the rotated ones (verify.MasterLog), -1 unknown.
	Reloads int `json:"reloads"`
	// PthreadKeys is the master's pthread keys in use, -1 unreadable.
	PthreadKeys int            `json:"pthread_keys"`
	Workers     []WorkerSample `json:"workers,omitempty"`
}

// WorkerSample is one worker's memory at a sample.
type WorkerSample struct {
	Proc ipcguard.ProcKey `json:"proc"`
	// Pool is the php-fpm pool the worker serves (its title is
	// "php-fpm: pool www"), "" for other servers.
	Pool string `json:"pool,omitempty"`
	// PSSKiB is its proportional set size (/proc/PID/smaps_rollup Pss):
	// shared pages divided among their users, so a sum over workers counts
	// each page once.
	PSSKiB int64 `json:"pss_kib"`
}

// maxSamples bounds a service's history; the oldest samples go first.
const maxSamples = 200

func samplePath(dir, service string) (string, error) {
	if service == "" || strings.ContainsAny(service, `/\`) || strings.HasPrefix(service, ".") {
		return "", fmt.Errorf("samples: bad service name %q", service)
	}
	return filepath.Join(dir, service+".json"), nil
}

// LoadSamples returns the service's samples in dir, oldest first; none
// when nothing was recorded yet.
func LoadSamples(dir, service string) ([]Sample, error) {
	path, err := samplePath(dir, service)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load samples: %w", err)
	}
	var out []Sample
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("load samples %s: %w", path, err)
	}
	return out, nil
}

// RecordSample appends s to the service's samples in dir (created mode
// 0700), keeping the newest maxSamples. The file is replaced atomically;
// two concurrent recorders may lose one sample, never corrupt the file.
func RecordSample(dir, service string, s Sample) error {
	path, err := samplePath(dir, service)
	if err != nil {
		return err
	}
	old, err := LoadSamples(dir, service)
	if err != nil {
		old = nil // a corrupt history is replaced, not kept failing
	}
	all := append(old, s)
	if len(all) > maxSamples {
		all = all[len(all)-maxSamples:]
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("record sample: %w", err)
	}
	data, err := json.Marshal(all)
	if err != nil {
		return fmt.Errorf("record sample: %w", err)
	}
	if err := atomicfile.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("record sample: %w", err)
	}
	return nil
}

// TakeSample observes master now: its pthread keys (keys, when the caller
// counted them; -1: count them) and its workers' memory (tree lists the
// master's processes, master first, as Status.Tree does); reloads is the
// count the caller read from the log.
func TakeSample(procRoot string, master ipcguard.Proc, reloads, keys int, tree []int) Sample {
	s := Sample{Taken: time.Now(), Master: master.Key(), Reloads: reloads, PthreadKeys: keys}
	if keys < 0 {
		if n, err := proc.PthreadKeysInUse(procRoot, master.PID); err == nil {
			s.PthreadKeys = n
		}
	}
	for _, pid := range tree {
		if pid == master.PID {
			continue
		}
		p, err := ipcguard.ReadProc(procRoot, pid)
		if err != nil || !p.Alive() {
			continue // exited meanwhile
		}
		pss, err := proc.ReadPSS(procRoot, pid)
		if err != nil || pss == 0 {
			continue // exited meanwhile
		}
		s.Workers = append(s.Workers, WorkerSample{Proc: p.Key(), Pool: fpmPoolOf(procRoot, pid), PSSKiB: pss >> 10})
	}
	return s
}

// fpmPoolOf returns the pool a php-fpm worker serves, from the title it
// sets ("php-fpm: pool www"), "" for any other process.
func fpmPoolOf(procRoot string, pid int) string {
	title := strings.Join(proc.Cmdline(procRoot, pid), " ")
	_, pool, ok := strings.Cut(title, "php-fpm: pool ")
	if !ok {
		return ""
	}
	return strings.TrimSpace(pool)
}

// ofMaster returns the samples of master, oldest first.
func ofMaster(samples []Sample, master ipcguard.ProcKey) []Sample {
	var out []Sample
	for _, s := range samples {
		if s.Master == master {
			out = append(out, s)
		}
	}
	return out
}
