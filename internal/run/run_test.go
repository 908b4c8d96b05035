package run

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
)

func TestHostRunCapturesOutputAndExitCode(t *testing.T) {
	h := &Host{}
	res, err := h.Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "echo out; echo err >&2; echo $LC_ALL; exit 5"}})
	var rerr *Error
	if !errors.As(err, &rerr) {
		t.Fatalf("want *Error, got %v", err)
	}
	if rerr.ExitCode != 5 || res.ExitCode != 5 || rerr.TimedOut {
		t.Fatalf("exit code: %+v", rerr)
	}
	if string(res.Stdout) != "out\nC\n" || strings.TrimSpace(rerr.Stderr) != "err" {
		t.Fatalf("output: %q / %q", res.Stdout, rerr.Stderr)
	}
	if !strings.Contains(err.Error(), "exit status 5: err") {
		t.Fatalf("message: %v", err)
	}
}

func TestHostRunPassesArgvWithoutShell(t *testing.T) {
	res, err := (&Host{}).Run(context.Background(), Cmd{Argv: []string{"printf", "%s|", "a b", "$HOME", ";true"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "a b|$HOME|;true|" {
		t.Fatalf("argv was reinterpreted: %q", res.Stdout)
	}
}

func TestHostRunStartFailure(t *testing.T) {
	_, err := (&Host{}).Run(context.Background(), Cmd{Argv: []string{"/nonexistent/tool"}})
	var rerr *Error
	if !errors.As(err, &rerr) || rerr.ExitCode != -1 || rerr.Err == nil {
		t.Fatalf("want start failure, got %#v", err)
	}
}

// The grandchild writes its pid, then both sleep; on timeout the whole
// process group must be gone, not just the direct child.
func TestHostRunTimeoutKillsProcessTree(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	script := `sh -c 'echo $$ > ` + pidFile + `; exec sleep 300' & wait`
	_, err := (&Host{}).Run(context.Background(), Cmd{Argv: []string{"sh", "-c", script}, Timeout: 500 * time.Millisecond})
	var rerr *Error
	if !errors.As(err, &rerr) || !rerr.TimedOut {
		t.Fatalf("want timeout, got %v", err)
	}
	if !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Fatal("timeout must be of class CommandTimeout")
	}
	b, rdErr := os.ReadFile(pidFile)
	if rdErr != nil {
		t.Fatal(rdErr)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	// Killed processes may linger as zombies until reaped by init; poll
	// for disappearance or zombie state rather than timing anything.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if !alive(pid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

func TestHungCommandDoesNotBlockOthers(t *testing.T) {
	h := &Host{}
	ctx, cancel := context.WithCancel(context.Background())
	hung := make(chan error, 1)
	go func() {
		_, err := h.Run(ctx, Cmd{Argv: []string{"sleep", "300"}})
		hung <- err
	}()
	for i := 0; i < 3; i++ {
		if _, err := h.Run(context.Background(), Cmd{Argv: []string{"true"}}); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-hung:
		t.Fatalf("hung command returned early: %v", err)
	default:
	}
	cancel()
	if err := <-hung; err == nil {
		t.Fatal("cancelled command must fail")
	}
}

func TestHostRunCapsOutput(t *testing.T) {
	res, err := (&Host{OutputLimit: 10}).Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "yes | head -c 100000"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(res.Stdout), "y\ny\ny\ny\ny\n") || !strings.Contains(string(res.Stdout), "truncated") || len(res.Stdout) > 40 {
		t.Fatalf("not capped: %d bytes", len(res.Stdout))
	}
}

func TestHostRunStdin(t *testing.T) {
	res, err := (&Host{}).Run(context.Background(), Cmd{Argv: []string{"cat"}, Stdin: []byte("hello")})
	if err != nil || string(res.Stdout) != "hello" {
		t.Fatalf("%q %v", res.Stdout, err)
	}
}

type recordingTB struct {
	errs     []string
	cleanups []func()
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Errorf(f string, a ...any) { r.errs = append(r.errs, f) }
func (r *recordingTB) Cleanup(f func())          { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) finish() {
	for _, f := range r.cleanups {
		f()
	}
}

func TestScripted(t *testing.T) {
	tb := &recordingTB{}
	s := NewScripted(tb, Step{Argv: []string{"lvs"}, Stdout: "x"}, Step{Argv: []string{"lvchange"}, ExitCode: 5, Stderr: "boom"})
	res, err := s.Run(context.Background(), Cmd{Argv: []string{"lvs"}})
	if err != nil || string(res.Stdout) != "x" {
		t.Fatal(res, err)
	}
	_, err = s.Run(context.Background(), Cmd{Argv: []string{"lvchange"}})
	var rerr *Error
	if !errors.As(err, &rerr) || rerr.ExitCode != 5 || rerr.Stderr != "boom" {
		t.Fatal(err)
	}
	if _, err := s.Run(context.Background(), Cmd{Argv: []string{"extra"}}); err == nil || len(tb.errs) != 1 {
		t.Fatal("unexpected command must fail the test")
	}
	s.Expect(Step{Argv: []string{"never"}})
	if s.String() != "1 steps left" || len(s.Calls()) != 3 {
		t.Fatal(s.String(), s.Calls())
	}
	tb.finish()
	if len(tb.errs) != 2 {
		t.Fatalf("leftover step not reported: %v", tb.errs)
	}
	tb2 := &recordingTB{}
	s2 := NewScripted(tb2, Step{Argv: []string{"a"}})
	if _, err := s2.Run(context.Background(), Cmd{Argv: []string{"b"}}); err == nil || len(tb2.errs) != 1 {
		t.Fatal("argv mismatch must fail the test")
	}
}

func TestFuncAdapter(t *testing.T) {
	var f Runner = Func(func(ctx context.Context, c Cmd) (Result, error) { return Result{Stdout: []byte(c.String())}, nil })
	res, _ := f.Run(context.Background(), Cmd{Argv: []string{"a", "b"}})
	if string(res.Stdout) != "a b" {
		t.Fatal(string(res.Stdout))
	}
}
