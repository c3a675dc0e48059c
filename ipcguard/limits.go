package ipcguard

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// parseSemLimits parses data, the text of /proc/sys/kernel/sem read from
// the file name: four non-negative decimal numbers on one line, separated
// by tabs (any blanks are accepted). Anything else is an error wrapping
// ErrMalformed that names name and line 1.
//
//	32000	1024000000	500	32000
func parseSemLimits(name string, data []byte) (semmsl, semmns, semopm, semmni int, err error) {
	var v [4]int
	if err := parseInts(data, v[:]); err != nil {
		return 0, 0, 0, 0, fmt.Errorf("%w: %s line 1: %w", ErrMalformed, name, err)
	}
	return v[0], v[1], v[2], v[3], nil
}

// parseLimit parses data, the text of a one-number file such as
// /proc/sys/kernel/shmmni read from the file name, as a non-negative int.
// Anything else is an error wrapping ErrMalformed that names name and line 1.
//
//	4096
func parseLimit(name string, data []byte) (int, error) {
	var v [1]int
	if err := parseInts(data, v[:]); err != nil {
		return 0, fmt.Errorf("%w: %s line 1: %w", ErrMalformed, name, err)
	}
	return v[0], nil
}

// parseInts parses data, one line with an optional final newline, as
// exactly len(dst) non-negative decimal ints into dst.
func parseInts(data []byte, dst []int) error {
	line := bytes.TrimSuffix(data, []byte{'\n'})
	if bytes.IndexByte(line, '\n') >= 0 {
		return fmt.Errorf("want one line")
	}
	f, ok := splitSpans(line, make([]span, 0, len(dst)), len(dst))
	if !ok || len(f) != len(dst) {
		return fmt.Errorf("want %d fields, got %d", len(dst), countFields(line))
	}
	for i, sp := range f {
		b := line[sp.start:sp.end]
		v, ok := parseDigits(b, 10, math.MaxInt)
		if !ok {
			return fmt.Errorf("field %d: %q is not a non-negative int", i+1, b)
		}
		dst[i] = int(v)
	}
	return nil
}

// ReadLimits reads the IPC limits of the caller's IPC namespace from
// procRoot/sys/kernel/{sem,shmmni,msgmni} (procRoot is normally "/proc").
// Errors wrap the os error or ErrMalformed.
func ReadLimits(procRoot string) (Limits, error) {
	var l Limits
	data, path, err := readKernelFile(procRoot, "sem")
	if err == nil {
		l.SEMMSL, l.SEMMNS, l.SEMOPM, l.SEMMNI, err = parseSemLimits(path, data)
	}
	if err == nil {
		l.SHMMNI, err = readLimit(procRoot, "shmmni")
	}
	if err == nil {
		l.MSGMNI, err = readLimit(procRoot, "msgmni")
	}
	if err != nil {
		return Limits{}, fmt.Errorf("read limits: %w", err)
	}
	return l, nil
}

// readLimit reads and parses the one-number file procRoot/sys/kernel/file.
func readLimit(procRoot, file string) (int, error) {
	data, path, err := readKernelFile(procRoot, file)
	if err != nil {
		return 0, err
	}
	return parseLimit(path, data)
}

// readKernelFile reads procRoot/sys/kernel/file, returning its path too.
func readKernelFile(procRoot, file string) (data []byte, path string, err error) {
	path = filepath.Join(procRoot, "sys", "kernel", file)
	data, err = os.ReadFile(path)
	return data, path, err
}
