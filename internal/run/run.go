// Package run is the single seam through which the agent runs host commands.
// Production uses Local; unit tests use Scripted (exact argv assertions); the
// simulator plugs in as a Func. Commands never go through a shell.
package run

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
)

// Runner runs one command. A non-zero exit or a timeout is returned as *Error
// together with whatever the command printed.
type Runner interface {
	Run(ctx context.Context, cmd Cmd) (Result, error)
}

// Cmd is one host command.
type Cmd struct {
	Argv    []string
	Timeout time.Duration // 0 means the runner's default
	Stdin   []byte
}

func (c Cmd) String() string { return strings.Join(c.Argv, " ") }

// Result is what a command printed and how it ended.
type Result struct {
	Stdout   []byte
	Stderr   []byte
	ExitCode int
	Duration time.Duration
}

// Error is a command that exited non-zero, was killed on timeout, or could
// not be started. It wraps errdefs.ErrCommandTimeout on timeout.
type Error struct {
	Argv     []string
	ExitCode int // -1 when the command did not exit by itself
	Stderr   string
	TimedOut bool
	Err      error // start failure or context error; nil for a plain non-zero exit
	// Unkillable is a command still running killGrace after its SIGKILL
	// (uninterruptible sleep): Run gave up waiting for Pid, which is reaped
	// in the background. TimedOut is set too.
	Unkillable bool
	Pid        int
}

func (e *Error) Error() string {
	switch {
	case e.Unkillable:
		return fmt.Sprintf("%s: killed (%v) but pid %d did not exit after SIGKILL, likely in uninterruptible sleep; it is reaped in the background",
			e.Argv[0], e.Err, e.Pid)
	case e.TimedOut:
		return fmt.Sprintf("%s: timed out and was killed", e.Argv[0])
	case e.Err != nil && e.ExitCode == -1:
		return fmt.Sprintf("%s: %v", e.Argv[0], e.Err)
	}
	msg := fmt.Sprintf("%s: exit status %d", e.Argv[0], e.ExitCode)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

func (e *Error) Unwrap() []error {
	errs := []error{e.Err}
	if e.TimedOut {
		errs = append(errs, errdefs.ErrCommandTimeout)
	}
	return errs
}

// Local runs commands on this machine.
type Local struct {
	DefaultTimeout time.Duration // used when Cmd.Timeout is 0; 0 means 2 minutes
	OutputLimit    int           // bytes kept per stream; 0 means 4 MiB
	// Env is appended after the fixed LC_ALL=C environment (tests use it
	// to put fake tools on PATH).
	Env []string

	// Test seams: wait reaps a started command (default (*exec.Cmd).Wait)
	// and grace replaces killGrace, so a test can stand in for a process
	// SIGKILL cannot end.
	wait  func(*exec.Cmd) error
	grace time.Duration
}

const (
	defaultTimeout     = 2 * time.Minute
	defaultOutputLimit = 4 << 20
	// waitDelay bounds how long Wait waits for pipes held open by a child
	// that escaped the process-group kill (e.g. one that called setsid).
	waitDelay = 2 * time.Second
	// killGrace bounds how long Run waits for the child after the SIGKILL
	// on timeout or cancellation. A child in uninterruptible sleep (an LVM
	// command stuck on dead storage) cannot die until its I/O ends, and its
	// caller must not stay blocked past its own deadline meanwhile. Longer
	// than waitDelay, so a child that merely left its pipes to a grandchild
	// still returns through Wait.
	killGrace = 5 * time.Second
)

// unkillable counts commands Run gave up on after killGrace that have not
// exited yet.
var unkillable atomic.Int64

// Unkillable is the number of commands, across every Local runner of the process,
// that did not exit after their SIGKILL and are still waited for in the
// background. Each one may still hold a device or an LVM lock.
func Unkillable() int { return int(unkillable.Load()) }

// Run starts argv in its own process group with LC_ALL=C, and on timeout or
// cancellation kills the whole group: an LVM command stuck on dead storage
// may have forked helpers that would otherwise keep the device busy. It
// returns at most killGrace after that kill, whether or not the child died.
func (h *Local) Run(ctx context.Context, c Cmd) (Result, error) {
	if len(c.Argv) == 0 {
		return Result{}, errors.New("run: empty argv")
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = h.DefaultTimeout
	}
	if timeout == 0 {
		timeout = defaultTimeout
	}
	limit := h.OutputLimit
	if limit == 0 {
		limit = defaultOutputLimit
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Env = append([]string{"LC_ALL=C", "PATH=" + envPath()}, h.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	}
	stdout, stderr := &capped{limit: limit}, &capped{limit: limit}
	cmd.Stdout, cmd.Stderr = stdout, stderr

	start := time.Now()
	err := cmd.Start()
	if err == nil {
		var exited bool
		if exited, err = h.await(ctx, cmd); !exited {
			res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: -1, Duration: time.Since(start)}
			return res, &Error{Argv: c.Argv, ExitCode: -1, Stderr: string(res.Stderr), TimedOut: true, Err: ctx.Err(),
				Unkillable: true, Pid: cmd.Process.Pid}
		}
	}
	res := Result{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), Duration: time.Since(start)}
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	// The group may outlive the leader (a daemonised grandchild); it is ours
	// to clean up either way. ESRCH is the normal case.
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err == nil {
		return res, nil
	}
	rerr := &Error{Argv: c.Argv, ExitCode: res.ExitCode, Stderr: string(res.Stderr)}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() == context.DeadlineExceeded:
		rerr.TimedOut, rerr.ExitCode, rerr.Err = true, -1, ctx.Err()
	case ctx.Err() != nil:
		rerr.ExitCode, rerr.Err = -1, ctx.Err()
	case errors.As(err, &exitErr):
		// plain non-zero exit: Err stays nil
	default:
		rerr.ExitCode, rerr.Err = -1, err
	}
	return res, rerr
}

// await reaps a started command. exited is false when the child is still
// there the grace after its SIGKILL: a goroutine goes on waiting to reap it
// (no zombie is left) and counts it as unkillable meanwhile.
func (h *Local) await(ctx context.Context, cmd *exec.Cmd) (exited bool, err error) {
	wait, grace := h.wait, h.grace
	if wait == nil {
		wait = (*exec.Cmd).Wait
	}
	if grace == 0 {
		grace = killGrace
	}
	waited := make(chan error, 1)
	go func() { waited <- wait(cmd) }()
	select {
	case err := <-waited:
		return true, err
	case <-ctx.Done():
		// exec sends the SIGKILL (cmd.Cancel) once ctx is done.
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-waited:
		return true, err
	case <-t.C:
		unkillable.Add(1)
		go func() {
			<-waited
			unkillable.Add(-1)
		}()
		return false, nil
	}
}

func envPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p
	}
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// capped keeps the first limit bytes of a stream and discards the rest, so a
// runaway command cannot exhaust the agent's memory. It is locked because
// Run may read it while exec still copies an unkillable child's output.
type capped struct {
	mu        sync.Mutex
	buf       bytes.Buffer
	limit     int
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.limit - c.buf.Len(); room > 0 {
		if len(p) > room {
			c.buf.Write(p[:room])
			c.truncated = true
		} else {
			c.buf.Write(p)
		}
	} else if len(p) > 0 {
		c.truncated = true
	}
	return len(p), nil
}

// Bytes returns a copy: the buffer may still be written to.
func (c *capped) Bytes() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := bytes.Clone(c.buf.Bytes())
	if c.truncated {
		out = append(out, "\n[output truncated]\n"...)
	}
	return out
}

// Func adapts a function to Runner; the simulator uses it.
type Func func(ctx context.Context, c Cmd) (Result, error)

func (f Func) Run(ctx context.Context, c Cmd) (Result, error) { return f(ctx, c) }
