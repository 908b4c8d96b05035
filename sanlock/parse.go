package sanlock

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Fields holds every key=value token of one record as printed. Typed struct
// fields are filled from the keys this package knows; anything a newer
// version adds stays reachable here.
type Fields map[string]string

// addTokens splits s on whitespace and stores each key=value token; tokens
// without '=' are ignored (formats drift, and a stray word is no reason to
// reject a snapshot).
func (f Fields) addTokens(s string) {
	for _, tok := range strings.Fields(s) {
		if k, v, ok := strings.Cut(tok, "="); ok && k != "" {
			f[k] = v
		}
	}
}

// Int returns the key as an int, or 0 when it is missing or not a number.
func (f Fields) Int(key string) int {
	n, _ := strconv.Atoi(f[key])
	return n
}

// Uint returns the key as a uint64, or 0 when it is missing or not a number.
func (f Fields) Uint(key string) uint64 {
	n, _ := strconv.ParseUint(f[key], 10, 64)
	return n
}

// Bool reports whether the key is present with a non-zero number.
func (f Fields) Bool(key string) bool { return f.Int(key) != 0 }

// lines yields the lines of b that hold more than white space, with
// trailing white space removed; so strings.Fields of a line is never empty.
func lines(b []byte) []string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimRightFunc(l, unicode.IsSpace); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

// records walks the records of a sanlock listing: every unindented line goes
// to record, which returns the Fields that the indented key=value lines under
// it (-D output) fill, or nil to drop them.
func records(b []byte, record func(lineNo int, l string) (Fields, error)) error {
	var cur Fields
	for n, l := range lines(b) {
		if l[0] == ' ' || l[0] == '\t' {
			if cur != nil {
				cur.addTokens(l)
			}
			continue
		}
		var err error
		if cur, err = record(n+1, l); err != nil {
			return err
		}
	}
	return nil
}

// diskRef is the "name:id:path:offset" reference sanlock prints for
// lockspaces and resources. The path may itself hold colons, so the first
// two and the last fields are taken from the ends.
type diskRef struct {
	name, second, path string
	offset             uint64
}

func parseDiskRef(s string) (diskRef, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || parts[0] == "" {
		return diskRef{}, fmt.Errorf("malformed reference %q", s)
	}
	r := diskRef{name: parts[0], second: parts[1]}
	if len(parts) >= 4 {
		off, err := strconv.ParseUint(parts[len(parts)-1], 10, 64)
		if err != nil {
			return diskRef{}, fmt.Errorf("offset in %q: %w", s, err)
		}
		r.offset = off
		r.path = strings.Join(parts[2:len(parts)-1], ":")
	} else if len(parts) == 3 {
		r.path = parts[2]
	}
	return r, nil
}

func atoiField(what, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q: not a number", what, s)
	}
	return n, nil
}

func uintField(what, s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: not a number", what, s)
	}
	return n, nil
}
