package ipcguard

import (
	"fmt"
	"math"
)

// take returns the name and field of the next wanted column and advances
// the cursor.
func (r *rowReader) take() (col string, f []byte) {
	sp := r.fields[r.idx[r.next]]
	col, f = r.cols[r.next], r.line[sp.start:sp.end]
	r.next++
	return col, f
}

// number reads the next column as an unsigned number in base (8 or 10) no
// greater than max; what describes a valid field for the error.
func (r *rowReader) number(base, max uint64, what string) uint64 {
	col, f := r.take()
	v, ok := parseDigits(f, base, max)
	if !ok {
		r.fail(col, f, what)
	}
	return v
}

// fail records the first bad field of the row.
func (r *rowReader) fail(col string, f []byte, what string) {
	if r.err == nil {
		r.err = fmt.Errorf("column %s: %q is not %s", col, f, what)
	}
}

// key reads the next column as an IPC key: signed decimal that fits an
// int32 (the kernel prints keys of 0x80000000 and above as negative).
func (r *rowReader) key() int32 {
	col, f := r.take()
	digits, max := f, uint64(math.MaxInt32)
	neg := len(f) > 0 && f[0] == '-'
	if neg {
		digits, max = f[1:], 1<<31
	}
	v, ok := parseDigits(digits, 10, max)
	if !ok {
		r.fail(col, f, "an int32")
	}
	if neg {
		return int32(-int64(v))
	}
	return int32(v)
}

// id reads the next column as a non-negative decimal C int: an identifier,
// pid or count.
func (r *rowReader) id() int { return int(r.number(10, math.MaxInt32, "a non-negative int32")) }

// count reads the next column as a non-negative decimal that fits an int.
func (r *rowReader) count() int { return int(r.number(10, math.MaxInt, "a non-negative int")) }

// perms reads the next column as octal permission bits.
func (r *rowReader) perms() uint32 { return uint32(r.number(8, math.MaxUint32, "octal uint32")) }

// u32 reads the next column as a decimal uint32 (uid, gid).
func (r *rowReader) u32() uint32 { return uint32(r.number(10, math.MaxUint32, "a uint32")) }

// u64 reads the next column as a decimal uint64 (sizes, byte counts).
func (r *rowReader) u64() uint64 { return r.number(10, math.MaxUint64, "a uint64") }

// time reads the next column as non-negative Unix seconds.
func (r *rowReader) time() int64 { return int64(r.number(10, math.MaxInt64, "a time")) }

// parseDigits parses b, a non-empty run of base-8 or base-10 digits with no
// sign, as a number no greater than max; ok is false otherwise.
func parseDigits[S ~string | ~[]byte](b S, base, max uint64) (v uint64, ok bool) {
	if len(b) == 0 || len(b) > fastDigits {
		return parseLongDigits(b, base, max)
	}
	for i := 0; i < len(b); i++ { // fastDigits digits cannot overflow
		d := uint64(b[i] - '0') // bytes below '0' wrap to 208 and above
		if d >= base {
			return 0, false
		}
		v = v*base + d
	}
	if v > max {
		return 0, false
	}
	return v, true
}

// fastDigits is the most decimal digits that cannot overflow a uint64.
const fastDigits = 19

// parseLongDigits is parseDigits checking for overflow at every digit.
func parseLongDigits[S ~string | ~[]byte](b S, base, max uint64) (v uint64, ok bool) {
	for i := 0; i < len(b); i++ {
		d := uint64(b[i] - '0')
		if d >= base || d > max || v > (max-d)/base {
			return 0, false
		}
		v = v*base + d
	}
	return v, len(b) > 0
}
