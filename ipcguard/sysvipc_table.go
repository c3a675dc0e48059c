package ipcguard

import (
	"bytes"
	"fmt"
	"math"
)

// parseColumns parses the text of a /proc/sysvipc file named name: a header
// line naming the columns, then one whitespace-separated row per object.
// cols lists the columns row reads, in the order it reads them; they are
// found by header name, so a kernel that adds columns still parses. Blank
// lines are skipped; empty or header-only input yields an empty slice. A
// missing column, a row whose field count differs from the header's, or a
// bad number is an error wrapping ErrMalformed that names the file and the
// 1-based line.
//
//	key      semid perms      nsems   uid   gid  cuid  cgid      otime      ctime
func parseColumns[T any](name string, data []byte, cols []string, row func(*rowReader) T) ([]T, error) {
	sc := lineScanner{data: data}
	header, n, ok := sc.next()
	if !ok {
		return []T{}, nil
	}
	r, err := newRowReader(header, cols)
	if err != nil {
		return nil, fmt.Errorf("%w: %s line %d: %w", ErrMalformed, name, n, err)
	}
	out := make([]T, 0, bytes.Count(data, []byte{'\n'}))
	for line, n, ok := sc.next(); ok; line, n, ok = sc.next() {
		v, err := readRow(r, line, row)
		if err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %w", ErrMalformed, name, n, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// lineScanner yields the non-blank lines of data with their 1-based numbers.
type lineScanner struct {
	data []byte
	n    int
}

// next returns the next non-blank line and its number; ok is false at the end.
func (s *lineScanner) next() (line []byte, n int, ok bool) {
	for len(s.data) > 0 {
		line = s.data
		if i := bytes.IndexByte(s.data, '\n'); i >= 0 {
			line, s.data = s.data[:i], s.data[i+1:]
		} else {
			s.data = nil
		}
		s.n++
		if !isBlank(line) {
			return line, s.n, true
		}
	}
	return nil, s.n, false
}

// isSpace reports whether c separates fields: ASCII blank, tab, CR, VT or FF.
func isSpace(c byte) bool { return spaces[c] }

// spaces is the table behind isSpace.
var spaces = [256]bool{' ': true, '\t': true, '\r': true, '\v': true, '\f': true}

// isBlank reports whether line holds only field separators.
func isBlank(line []byte) bool {
	for _, c := range line {
		if !isSpace(c) {
			return false
		}
	}
	return true
}

// span is the field line[start:end] of a line; it holds no pointer, so
// filling a slice of spans costs no GC write barriers.
type span struct{ start, end int }

// splitSpans appends the fields of line to dst[:0] as spans. ok is false
// when line has more than max fields.
func splitSpans(line []byte, dst []span, max int) (fields []span, ok bool) {
	fields = dst[:0]
	for i := 0; i < len(line); {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		start := i
		for i < len(line) && !isSpace(line[i]) {
			i++
		}
		if i > start {
			if len(fields) == max {
				return fields, false
			}
			fields = append(fields, span{start, i})
		}
	}
	return fields, true
}

// rowReader reads the wanted columns of one row, in order, through a
// cursor; the first bad field is kept in err and later reads return zero.
type rowReader struct {
	cols   []string // wanted column names, for errors
	idx    []int    // idx[i]: header position of cols[i]
	width  int      // number of header columns
	line   []byte   // the current row
	fields []span   // fields of the current row
	next   int      // index into cols of the next column to read
	err    error    // first error of the current row
}

// newRowReader maps cols to their positions in header; a duplicate header
// name or a missing column is an error naming it.
func newRowReader(header []byte, cols []string) (*rowReader, error) {
	names, _ := splitSpans(header, nil, math.MaxInt)
	pos := make(map[string]int, len(names))
	for i, sp := range names {
		name := string(header[sp.start:sp.end])
		if _, dup := pos[name]; dup {
			return nil, fmt.Errorf("header: duplicate column %q", name)
		}
		pos[name] = i
	}
	r := &rowReader{cols: cols, idx: make([]int, len(cols)), width: len(names)}
	for i, c := range cols {
		p, ok := pos[c]
		if !ok {
			return nil, fmt.Errorf("header: no column %q", c)
		}
		r.idx[i] = p
	}
	r.fields = make([]span, 0, r.width)
	return r, nil
}

// readRow splits line into fields and calls row on them; it fails when the
// field count differs from the header's or row met a bad field.
func readRow[T any](r *rowReader, line []byte, row func(*rowReader) T) (T, error) {
	var zero T
	f, ok := splitSpans(line, r.fields, r.width)
	if !ok || len(f) != r.width {
		return zero, fmt.Errorf("want %d fields, got %d", r.width, countFields(line))
	}
	r.line, r.fields, r.next, r.err = line, f, 0, nil
	v := row(r)
	if r.err != nil {
		return zero, r.err
	}
	return v, nil
}

// countFields returns the number of fields of line, for error messages.
func countFields(line []byte) int {
	f, _ := splitSpans(line, nil, math.MaxInt)
	return len(f)
}
