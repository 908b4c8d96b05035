package sim

import (
	"bufio"
	"context"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// A recorded lab script replayed against the simulator: every "$ cmd" it
// logged is run on a simulated host, and what the real host printed (stdout
// and stderr merged in the log) and its exit code must come back.

type step struct {
	line int
	cmd  string
	out  []string
	rc   int           // -1 when the log has no rc (captures)
	at   time.Duration // since the script started; 0 in captures
}

var (
	stepRE = regexp.MustCompile(`^\[ *([0-9.]+)\] \$ (?:timeout \d+ )?(.*)$`)
	timeRE = regexp.MustCompile(`^TIME .* rc=(\d+) `)
	uuidRE = regexp.MustCompile(`[A-Za-z0-9]{6}(-[A-Za-z0-9]{4}){5}-[A-Za-z0-9]{6}`)
	tsRE   = regexp.MustCompile(`(timestamp|renewal_last_(attempt|success)=?) ?\d+`)
	pidRE  = regexp.MustCompile(`\bp [1-9]\d*`)
	// The VG lock version counts metadata writes the simulator does not
	// reproduce exactly (it is not used by the agent).
	verRE = regexp.MustCompile(`ver \d+`)
)

func parseLog(t *testing.T, name string) []step {
	t.Helper()
	f, err := os.Open("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []step
	var cur *step
	sc := bufio.NewScanner(f)
	n := 0
	flush := func() {
		if cur != nil {
			steps = append(steps, *cur)
			cur = nil
		}
	}
	for sc.Scan() {
		n++
		l := sc.Text()
		if m := stepRE.FindStringSubmatch(l); m != nil {
			flush()
			at, _ := strconv.ParseFloat(m[1], 64)
			cur = &step{line: n, cmd: m[2], rc: -1, at: time.Duration(at * float64(time.Second))}
			continue
		}
		if strings.HasPrefix(l, "$ ") {
			flush()
			cur = &step{line: n, cmd: l[2:], rc: -1}
			continue
		}
		if m := timeRE.FindStringSubmatch(l); m != nil && cur != nil {
			cur.rc, _ = strconv.Atoi(m[1])
			flush()
			continue
		}
		if strings.HasPrefix(l, "[") || strings.HasPrefix(l, "----") || strings.HasPrefix(l, "===") || strings.HasPrefix(l, "(rc=") {
			flush()
			continue
		}
		if cur != nil {
			cur.out = append(cur.out, l)
		}
	}
	flush()
	return steps
}

// normalise replaces uuids by their order of appearance and drops times.
func normalise(lines []string) []string {
	seen := map[string]string{}
	out := make([]string, len(lines))
	for i, l := range lines {
		l = uuidRE.ReplaceAllStringFunc(l, func(u string) string {
			if _, ok := seen[u]; !ok {
				seen[u] = "UUID" + strconv.Itoa(len(seen))
			}
			return seen[u]
		})
		l = tsRE.ReplaceAllString(l, "$1 T")
		l = pidRE.ReplaceAllString(l, "p PID")
		l = verRE.ReplaceAllString(l, "ver N")
		if strings.HasPrefix(l, "daemon ") {
			l = "daemon D"
		}
		out[i] = l
	}
	return out
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// runSim runs argv, stepping the manual clock while it waits (a lock start).
func runSim(t *testing.T, clk *ManualClock, h *Host, argv []string) (run.Result, int) {
	t.Helper()
	type done struct {
		res run.Result
		err error
	}
	ch := make(chan done, 1)
	go func() {
		res, err := h.Run(context.Background(), run.Cmd{Argv: argv})
		ch <- done{res, err}
	}()
	for {
		select {
		case d := <-ch:
			var rerr *run.Error
			if errors.As(d.err, &rerr) {
				return d.res, rerr.ExitCode
			}
			if d.err != nil {
				t.Fatalf("%v: %v", argv, d.err)
			}
			return d.res, 0
		case <-time.After(time.Millisecond):
			clk.Advance(time.Second)
		}
	}
}

// compare checks that stderr lines appear in the recorded lines in order and
// that the rest of the recorded lines are stdout, byte for byte.
func compare(recorded []string, res run.Result) (string, bool) {
	rec := normalise(recorded)
	act := normalise(append(splitLines(string(res.Stdout)), splitLines(string(res.Stderr))...))
	nOut := len(splitLines(string(res.Stdout)))
	stdout, stderr := act[:nOut], act[nOut:]
	var rest []string
	j := 0
	for _, l := range rec {
		if j < len(stderr) && l == stderr[j] {
			j++
			continue
		}
		rest = append(rest, l)
	}
	if j != len(stderr) || strings.Join(rest, "\n") != strings.Join(stdout, "\n") {
		return "recorded:\n" + strings.Join(rec, "\n") + "\nsim stdout:\n" + strings.Join(stdout, "\n") + "\nsim stderr:\n" + strings.Join(stderr, "\n"), false
	}
	return "", true
}

func replay(t *testing.T, log string, fromLine int, started bool, skip map[string]bool, stderrOnly map[string]bool) {
	clk := NewManualClock(time.Unix(1795445370, 0))
	c := NewCluster(Options{Hosts: []HostSpec{{Name: "lab1", HostID: 1, NoWatchdog: true}}, IOTimeout: 2 * time.Second, Clock: clk})
	h := c.Host("lab1")
	base := clk.Now()
	if started { // the log's vgcreate started the lockspace
		runSim(t, clk, h, []string{"vgchange", "--lock-start", "vol"})
	}
	ran := 0
	for _, s := range parseLog(t, log) {
		if s.line < fromLine || skip[s.cmd] || strings.Contains(s.cmd, "|") {
			continue
		}
		// Sim time follows the recording, so joins complete as they did.
		if d := base.Add(s.at).Sub(clk.Now()); s.at > 0 && d > 0 {
			clk.Advance(d)
		}
		res, rc := runSim(t, clk, h, strings.Fields(s.cmd))
		ran++
		if s.rc >= 0 && rc != s.rc {
			t.Errorf("%s:%d %s: rc %d, recorded %d (stderr %q)", log, s.line, s.cmd, rc, s.rc, res.Stderr)
		}
		if stderrOnly[s.cmd] {
			res.Stdout = nil
		}
		if diff, ok := compare(s.out, res); !ok {
			t.Errorf("%s:%d %s:\n%s", log, s.line, s.cmd, diff)
		}
	}
	if ran < 20 {
		t.Fatalf("replayed only %d commands", ran)
	}
}

func TestReplayBasic(t *testing.T) {
	// From the first lock stop after vgcreate; log_dump lines are not commands.
	replay(t, "01-basic.sh.h1.log", 68, true, nil, nil)
}

func TestReplayMisc(t *testing.T) {
	replay(t, "run-04-smp1.04-misc.sh.h1.log", 20, true,
		// the lab filtered status -D through grep
		map[string]bool{"sanlock client status -D": true},
		// the log printed lvmlockctl's stdout after its TIME line
		map[string]bool{"lvmlockctl --kill vol": true})
}
