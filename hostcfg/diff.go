package hostcfg

import (
	"fmt"
	"strings"
)

const diffContext = 3

// UnifiedDiff renders the change from old to new as `diff -u` does, with
// paths a and b in the header; "" when they are equal. Config edits touch a
// few lines of long files, so the common head and tail are cut before the
// LCS, which then runs on the small middle only.
func UnifiedDiff(a, b string, old, new []byte) string {
	x, y := splitLines(old), splitLines(new)
	pre := 0
	for pre < len(x) && pre < len(y) && x[pre] == y[pre] {
		pre++
	}
	suf := 0
	for suf < len(x)-pre && suf < len(y)-pre && x[len(x)-1-suf] == y[len(y)-1-suf] {
		suf++
	}
	if pre == len(x) && pre == len(y) {
		return ""
	}
	ops := make([]op, 0, len(x)+len(y))
	for i := 0; i < pre; i++ {
		ops = append(ops, op{' ', x[i]})
	}
	ops = append(ops, lcsOps(x[pre:len(x)-suf], y[pre:len(y)-suf])...)
	for i := len(x) - suf; i < len(x); i++ {
		ops = append(ops, op{' ', x[i]})
	}
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", a, b)
	writeHunks(&out, ops)
	return out.String()
}

type op struct {
	kind byte // ' ', '-', '+'
	line string
}

func lcsOps(x, y []string) []op {
	// lcs[i][j] is the LCS length of x[i:] and y[j:].
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []op
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			ops = append(ops, op{' ', x[i]})
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] > lcs[i+1][j]):
			ops = append(ops, op{'+', y[j]})
			j++
		default:
			ops = append(ops, op{'-', x[i]})
			i++
		}
	}
	return ops
}

// writeHunks groups changes with diffContext lines around them; hunks whose
// context would overlap are merged.
func writeHunks(out *strings.Builder, ops []op) {
	for start := 0; start < len(ops); {
		first := start
		for first < len(ops) && ops[first].kind == ' ' {
			first++
		}
		if first == len(ops) {
			return
		}
		lo := max(first-diffContext, 0)
		hi := first
		for k := first; k < len(ops); k++ {
			if ops[k].kind != ' ' {
				hi = k
			} else if k-hi > 2*diffContext {
				break
			}
		}
		hi = min(hi+diffContext+1, len(ops))
		oldStart, newStart := 1, 1
		for _, o := range ops[:lo] {
			if o.kind != '+' {
				oldStart++
			}
			if o.kind != '-' {
				newStart++
			}
		}
		oldN, newN := 0, 0
		for _, o := range ops[lo:hi] {
			if o.kind != '+' {
				oldN++
			}
			if o.kind != '-' {
				newN++
			}
		}
		fmt.Fprintf(out, "@@ -%s +%s @@\n", hunkRange(oldStart, oldN), hunkRange(newStart, newN))
		for _, o := range ops[lo:hi] {
			out.WriteByte(o.kind)
			out.WriteString(o.line)
			if !strings.HasSuffix(o.line, "\n") {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		start = hi
	}
}

// hunkRange prints a range as diff -u does: "start,count", "start" for one
// line, and the line before for an empty range.
func hunkRange(start, n int) string {
	switch n {
	case 0:
		return fmt.Sprintf("%d,0", start-1)
	case 1:
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, n)
}
