package proc

import (
	"bufio"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PthreadKeysMax is glibc's PTHREAD_KEYS_MAX: pthread_key_create fails with
// EAGAIN past it, and libgomp's constructor then exits the process
// ("libgomp: could not create thread pool destructor.", REFERENCE.md §7).
const PthreadKeysMax = 1024

// PthreadKeysInUse counts the pthread keys process pid has created and not
// deleted. glibc exposes no count; its table __pthread_keys (exported
// GLIBC_PRIVATE since 2.34) holds PTHREAD_KEYS_MAX entries of
// {uintptr seq; destructor}, and a key is in use while its seq is odd. It
// is read from /proc/PID/mem at libc's load address plus the symbol's value,
// which needs ptrace-read access (root, or CAP_SYS_PTRACE).
func PthreadKeysInUse(procRoot string, pid int) (int, error) {
	libc, base, err := libcMapping(procRoot, pid)
	if err != nil {
		return 0, err
	}
	off, err := keyTableOffset(libc)
	if err != nil {
		return 0, err
	}
	mem, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "mem"))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoKeyTable, err)
	}
	defer mem.Close()
	const entry = 16 // {uintptr_t seq; void (*destr)(void *)} on 64-bit
	table := make([]byte, PthreadKeysMax*entry)
	if _, err := mem.ReadAt(table, int64(base+off)); err != nil {
		return 0, fmt.Errorf("%w: read pid %d memory: %w", ErrNoKeyTable, pid, err)
	}
	n := 0
	for i := 0; i < PthreadKeysMax; i++ {
		if binary.LittleEndian.Uint64(table[i*entry:])&1 == 1 {
			n++
		}
	}
	return n, nil
}

// libcMapping finds glibc in /proc/PID/maps: its path and the address of
// its mapping at file offset 0 (its load base).
//
//	7f473ae21000-7f473ae47000 r--p 00000000 fe:00 326269   /usr/lib/x86_64-linux-gnu/libc.so.6
func libcMapping(procRoot string, pid int) (string, uint64, error) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "maps"))
	if err != nil {
		return "", 0, fmt.Errorf("%w: %w", ErrNoKeyTable, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[2] != "00000000" || !strings.HasPrefix(filepath.Base(fields[5]), "libc.so") {
			continue
		}
		if strings.HasSuffix(sc.Text(), " (deleted)") {
			// libc was upgraded under the process: the file at the path is
			// another build, whose symbol offsets need not match.
			return "", 0, fmt.Errorf("%w: pid %d runs a libc since replaced on disk", ErrNoKeyTable, pid)
		}
		start, _, _ := strings.Cut(fields[0], "-")
		base, err := strconv.ParseUint(start, 16, 64)
		if err != nil {
			return "", 0, fmt.Errorf("%w: maps line %q", ErrNoKeyTable, sc.Text())
		}
		return filepath.Join(procRoot, strconv.Itoa(pid), "root", fields[5]), base, nil
	}
	return "", 0, fmt.Errorf("%w: pid %d has no glibc mapped", ErrNoKeyTable, pid)
}

// keyTableOffset returns the value of __pthread_keys in libc's dynamic
// symbols.
func keyTableOffset(libc string) (uint64, error) {
	f, err := elf.Open(libc)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrNoKeyTable, err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrNoKeyTable, libc, err)
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return 0, fmt.Errorf("%w: %s is not a 64-bit little-endian libc", ErrNoKeyTable, libc)
	}
	for _, s := range syms {
		if s.Name == "__pthread_keys" {
			if s.Size != PthreadKeysMax*16 {
				return 0, fmt.Errorf("%w: %s's __pthread_keys is %d bytes, not %d", ErrNoKeyTable, libc, s.Size, PthreadKeysMax*16)
			}
			return s.Value, nil
		}
	}
	return 0, fmt.Errorf("%w: %s exports no __pthread_keys (glibc before 2.34?)", ErrNoKeyTable, libc)
}
