package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
)

func TestHostRunCapturesOutputAndExitCode(t *testing.T) {
	h := &Local{}
	res, err := h.Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "echo out; echo err >&2; echo $LC_ALL; exit 5"}})
	var rerr *Error
	if !errors.As(err, &rerr) {
		t.Fatalf("want *Error, got %v", err)
	}
	if rerr.ExitCode != 5 {
		t.Fatalf("exit code: rerr.ExitCode = %v, want 5", rerr.ExitCode)
	}
	if res.ExitCode != 5 {
		t.Fatalf("exit code: res.ExitCode = %v, want 5", res.ExitCode)
	}
	if rerr.TimedOut {
		t.Fatal("exit code: rerr.TimedOut = true, want false")
	}
	if string(res.Stdout) != "out\nC\n" {
		t.Fatalf("output: string(res.Stdout) = %q, want \"out\\nC\\n\"", string(res.Stdout))
	}
	if strings.TrimSpace(rerr.Stderr) != "err" {
		t.Fatalf("output: strings.TrimSpace(rerr.Stderr) = %q, want \"err\"", strings.TrimSpace(rerr.Stderr))
	}
	if !strings.Contains(err.Error(), "exit status 5: err") {
		t.Fatalf("message: %v", err)
	}
}

func TestHostRunPassesArgvWithoutShell(t *testing.T) {
	res, err := (&Local{}).Run(context.Background(), Cmd{Argv: []string{"printf", "%s|", "a b", "$HOME", ";true"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "a b|$HOME|;true|" {
		t.Fatalf("argv was reinterpreted: %q", res.Stdout)
	}
}

func TestHostRunStartFailure(t *testing.T) {
	_, err := (&Local{}).Run(context.Background(), Cmd{Argv: []string{"/nonexistent/tool"}})
	var rerr *Error
	if !errors.As(err, &rerr) {
		t.Fatal("want start failure, got: errors.As(err, &rerr) = false, want true")
	}
	if rerr.ExitCode != -1 {
		t.Fatalf("want start failure, got: rerr.ExitCode = %v, want -1", rerr.ExitCode)
	}
	if rerr.Err == nil {
		t.Fatal("want start failure, got: rerr.Err = nil, want non-nil")
	}
}

// The grandchild writes its pid, then both sleep; on timeout the whole
// process group must be gone, not just the direct child.
func TestHostRunTimeoutKillsProcessTree(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	script := `sh -c 'echo $$ > ` + pidFile + `; exec sleep 300' & wait`
	_, err := (&Local{}).Run(context.Background(), Cmd{Argv: []string{"sh", "-c", script}, Timeout: 500 * time.Millisecond})
	var rerr *Error
	if !errors.As(err, &rerr) {
		t.Fatal("want timeout, got: errors.As(err, &rerr) = false, want true")
	}
	if !rerr.TimedOut {
		t.Fatal("want timeout, got: rerr.TimedOut = false, want true")
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

// A child in uninterruptible sleep outlives its SIGKILL, so Wait does not
// return; here a wait that blocks until released stands in for it. Run must
// still return after the grace, count the child as unkillable while it
// lingers, and reap it once it ends.
func TestHostRunReturnsWhenTheChildOutlivesItsKill(t *testing.T) {
	release := make(chan struct{})
	h := &Local{grace: 10 * time.Millisecond, wait: func(c *exec.Cmd) error {
		<-release
		return c.Wait()
	}}
	before := Unkillable()
	done := make(chan error, 1)
	go func() {
		_, err := h.Run(context.Background(), Cmd{Argv: []string{"sleep", "300"}, Timeout: 50 * time.Millisecond})
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute): // a bound for a hung test, not a timing assertion
		close(release)
		t.Fatal("Run still blocked a minute after its timeout")
	}
	var rerr *Error
	if !errors.As(err, &rerr) || !rerr.Unkillable || !rerr.TimedOut || rerr.Pid <= 0 || rerr.ExitCode != -1 {
		close(release)
		t.Fatalf("got %#v, want an unkillable timeout *Error with the pid", err)
	}
	if !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Errorf("got: err = %v, want errdefs.ErrCommandTimeout", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got: err = %v, want context.DeadlineExceeded", err)
	}
	if want := fmt.Sprintf("sleep: killed (context deadline exceeded) but pid %d did not exit after SIGKILL", rerr.Pid); !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q, want it to start with %q", err, want)
	}
	if got, want := Unkillable(), before+1; got != want {
		t.Errorf("Unkillable() = %d while the child lingers, want %d", got, want)
	}

	close(release) // the I/O ends: the child can die and be reaped
	for i := 0; Unkillable() != before; i++ {
		if i == 500 { // a bound for a hung test, not a timing assertion
			t.Fatalf("Unkillable() = %d after the child was released, want %d", Unkillable(), before)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Reaped, not a zombie: the pid is gone.
	if err := syscall.Kill(rerr.Pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("kill -0 %d after reaping: %v, want ESRCH", rerr.Pid, err)
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
	h := &Local{}
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
	res, err := (&Local{OutputLimit: 10}).Run(context.Background(), Cmd{Argv: []string{"sh", "-c", "yes | head -c 100000"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(res.Stdout), "y\ny\ny\ny\ny\n") {
		t.Fatalf("not capped: string(res.Stdout) = %q, want it to start with \"y\\ny\\ny\\ny\\ny\\n\"", string(res.Stdout))
	}
	if !strings.Contains(string(res.Stdout), "truncated") {
		t.Fatalf("not capped: string(res.Stdout) = %q, want it to contain \"truncated\"", string(res.Stdout))
	}
	if len(res.Stdout) > 40 {
		t.Fatalf("not capped: len(res.Stdout) = %v, want <= 40", len(res.Stdout))
	}
}

func TestHostRunStdin(t *testing.T) {
	res, err := (&Local{}).Run(context.Background(), Cmd{Argv: []string{"cat"}, Stdin: []byte("hello")})
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if string(res.Stdout) != "hello" {
		t.Fatalf("string(res.Stdout) = %q, want \"hello\"", string(res.Stdout))
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
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if string(res.Stdout) != "x" {
		t.Fatalf("string(res.Stdout) = %q, want \"x\"", string(res.Stdout))
	}
	_, err = s.Run(context.Background(), Cmd{Argv: []string{"lvchange"}})
	var rerr *Error
	if !errors.As(err, &rerr) {
		t.Fatal("errors.As(err, &rerr) = false, want true")
	}
	if rerr.ExitCode != 5 {
		t.Fatalf("rerr.ExitCode = %v, want 5", rerr.ExitCode)
	}
	if rerr.Stderr != "boom" {
		t.Fatalf("rerr.Stderr = %q, want \"boom\"", rerr.Stderr)
	}
	{
		_, err := s.Run(context.Background(), Cmd{Argv: []string{"extra"}})
		if err == nil {
			t.Fatal("unexpected command must fail the test: err = nil, want non-nil")
		}
		if len(tb.errs) != 1 {
			t.Fatalf("unexpected command must fail the test: len(tb.errs) = %v, want 1", len(tb.errs))
		}
	}
	s.Expect(Step{Argv: []string{"never"}})
	if s.String() != "1 steps left" {
		t.Fatalf("s.String() = %q, want \"1 steps left\"", s.String())
	}
	if len(s.Calls()) != 3 {
		t.Fatalf("len(s.Calls()) = %v, want 3", len(s.Calls()))
	}
	tb.finish()
	if len(tb.errs) != 2 {
		t.Fatalf("leftover step not reported: %v", tb.errs)
	}
	tb2 := &recordingTB{}
	s2 := NewScripted(tb2, Step{Argv: []string{"a"}})
	{
		_, err := s2.Run(context.Background(), Cmd{Argv: []string{"b"}})
		if err == nil {
			t.Fatal("argv mismatch must fail the test: err = nil, want non-nil")
		}
		if len(tb2.errs) != 1 {
			t.Fatalf("argv mismatch must fail the test: len(tb2.errs) = %v, want 1", len(tb2.errs))
		}
	}
}

func TestScriptedAnyOrder(t *testing.T) {
	tb := &recordingTB{}
	s := NewScripted(tb, Step{Argv: []string{"a"}, Stdout: "a1"}, Step{Argv: []string{"b"}}, Step{Argv: []string{"a"}, Stdout: "a2"}).AnyOrder()
	var got []string
	for _, argv := range []string{"b", "a", "a"} {
		res, err := s.Run(context.Background(), Cmd{Argv: []string{argv}})
		if err != nil {
			t.Fatalf("%s: %v", argv, err)
		}
		got = append(got, argv+"="+string(res.Stdout))
	}
	if want := []string{"b=", "a=a1", "a=a2"}; !slices.Equal(got, want) {
		t.Errorf("answers: got %q, want %q", got, want)
	}
	{
		_, err := s.Run(context.Background(), Cmd{Argv: []string{"a"}})
		if err == nil {
			t.Fatal("a command with no step left: err = nil, want non-nil")
		}
		if len(tb.errs) != 1 {
			t.Errorf("a command with no step left: len(tb.errs) = %v, want 1", len(tb.errs))
		}
	}
	s.Expect(Step{Argv: []string{"never"}})
	tb.finish()
	if len(tb.errs) != 2 {
		t.Errorf("leftover step: got %d test errors, want 2: %q", len(tb.errs), tb.errs)
	}
}

func TestFuncAdapter(t *testing.T) {
	var f Runner = Func(func(ctx context.Context, c Cmd) (Result, error) { return Result{Stdout: []byte(c.String())}, nil })
	res, _ := f.Run(context.Background(), Cmd{Argv: []string{"a", "b"}})
	if string(res.Stdout) != "a b" {
		t.Fatal(string(res.Stdout))
	}
}
