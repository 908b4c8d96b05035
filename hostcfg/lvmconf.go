// Package hostcfg edits the host configuration the agent depends on
// (lvm.conf, lvmlocal.conf, multipath conf.d) in place and idempotently:
// only the keys it owns change, every other line of the operator's files
// is kept byte for byte, and each change is shown as a unified diff first.
package hostcfg

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"

	"github.com/aos-agent/aos-agent/errdefs"
)

// Setting is one key inside a top-level lvm.conf section, e.g.
// global/use_lvmlockd.
type Setting struct {
	Section, Key string
	Value        string // already in lvm.conf syntax: 1, "text"
}

// Int and Quote render values in lvm.conf syntax.
func Int(n int) string { return strconv.Itoa(n) }
func Quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

var sectionStart = regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)\s*\{\s*(#.*)?$`)

// SetLVM sets each setting in an lvm.conf-syntax file: an active
// `key = ...` line in the section is rewritten in place; otherwise the
// commented default (`# key = ...`, as Debian ships every key) is replaced
// by the active line, keeping its documentation above; otherwise the key is
// added before the section's closing brace; a missing section is appended.
func SetLVM(content []byte, settings ...Setting) ([]byte, error) {
	lines := splitLines(content)
	for _, s := range settings {
		var err error
		if lines, err = setOne(lines, s); err != nil {
			return nil, err
		}
	}
	return []byte(strings.Join(lines, "")), nil
}

func setOne(lines []string, s Setting) ([]string, error) {
	if strings.ContainsAny(s.Value, "\n") {
		return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "%s/%s: value has a newline", s.Section, s.Key)
	}
	start, end, err := findSection(lines, s.Section)
	if err != nil {
		return nil, err
	}
	if start < 0 {
		if n := len(lines); n > 0 && !strings.HasSuffix(lines[n-1], "\n") {
			lines[n-1] += "\n"
		}
		return append(lines, s.Section+" {\n", "\t"+s.Key+" = "+s.Value+"\n", "}\n"), nil
	}
	active := regexp.MustCompile(`^(\s*)` + regexp.QuoteMeta(s.Key) + `\s*=`)
	commented := regexp.MustCompile(`^(\s*)#\s*` + regexp.QuoteMeta(s.Key) + `\s*=`)
	found, def := -1, -1
	for _, i := range ownLines(lines, start, end) {
		switch {
		case active.MatchString(lines[i]):
			if found >= 0 {
				return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "%s/%s is set twice (lines %d and %d); fix it by hand", s.Section, s.Key, found+1, i+1)
			}
			found = i
		case def < 0 && commented.MatchString(lines[i]):
			def = i
		}
	}
	switch {
	case found >= 0:
		indent := active.FindStringSubmatch(lines[found])[1]
		lines[found] = indent + s.Key + " = " + s.Value + "\n"
	case def >= 0:
		indent := commented.FindStringSubmatch(lines[def])[1]
		lines[def] = indent + s.Key + " = " + s.Value + "\n"
	default:
		lines = append(lines[:end], append([]string{"\t" + s.Key + " = " + s.Value + "\n"}, lines[end:]...)...)
	}
	return lines, nil
}

// findSection returns the lines of `name {` and of its closing brace, or
// -1 when the file has no such top-level section. Braces in comments and
// quoted strings do not count.
func findSection(lines []string, name string) (start, end int, err error) {
	depth := 0
	start = -1
	for i, l := range lines {
		code := stripComment(l)
		if depth == 0 {
			if m := sectionStart.FindStringSubmatch(strings.TrimSpace(code)); m != nil && m[1] == name {
				if start >= 0 {
					return 0, 0, errdefs.Errorf(errdefs.ErrInvalidArgument, "section %s appears twice; fix it by hand", name)
				}
				start = i
			}
		}
		depth += strings.Count(code, "{") - strings.Count(code, "}")
		if depth < 0 {
			return 0, 0, errdefs.Errorf(errdefs.ErrInvalidArgument, "line %d: unbalanced '}'", i+1)
		}
		if depth == 0 && start >= 0 && end == 0 && i > start {
			end = i
		}
		if depth == 0 && start == i && strings.Contains(code, "}") {
			return 0, 0, errdefs.Errorf(errdefs.ErrInvalidArgument, "line %d: one-line section %s; fix it by hand", i+1, name)
		}
	}
	if depth != 0 {
		return 0, 0, errdefs.Errorf(errdefs.ErrInvalidArgument, "unbalanced '{': %d not closed", depth)
	}
	return start, end, nil
}

// ownLines lists the lines between a section's braces that belong to the
// section itself, not to a subsection nested in it.
func ownLines(lines []string, start, end int) []int {
	var out []int
	depth := 0
	for i := start + 1; i < end; i++ {
		if depth == 0 {
			out = append(out, i)
		}
		code := stripComment(lines[i])
		depth += strings.Count(code, "{") - strings.Count(code, "}")
	}
	return out
}

// stripComment drops a '#' comment outside double quotes and the quoted
// strings themselves, leaving the code that braces are counted in.
func stripComment(l string) string {
	var b strings.Builder
	inQuote := false
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '#':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// GetLVM returns the active value of section/key in lvm.conf syntax, with
// quotes removed, and whether it is set.
func GetLVM(content []byte, section, key string) (string, bool) {
	lines := splitLines(content)
	start, end, err := findSection(lines, section)
	if err != nil || start < 0 {
		return "", false
	}
	active := regexp.MustCompile(`^\s*` + regexp.QuoteMeta(key) + `\s*=\s*(.*)$`)
	for _, i := range ownLines(lines, start, end) {
		if m := active.FindStringSubmatch(strings.TrimRight(lines[i], "\n")); m != nil {
			v := strings.TrimSpace(m[1])
			if strings.HasPrefix(v, `"`) {
				if u, err := strconv.Unquote(v); err == nil {
					return u, true
				}
			}
			return strings.TrimSpace(stripComment(v)), true
		}
	}
	return "", false
}

// splitLines keeps each line's "\n" so joining gives the input back.
func splitLines(b []byte) []string {
	if len(b) == 0 {
		return nil
	}
	var out []string
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			out = append(out, string(b))
			break
		}
		out = append(out, string(b[:i+1]))
		b = b[i+1:]
	}
	return out
}
