// Package run is the single seam through which the agent runs host commands.
// Production uses Host; unit tests use Scripted (exact argv assertions); the
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
}

func (e *Error) Error() string {
	switch {
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

// Host runs commands on this machine.
type Host struct {
	DefaultTimeout time.Duration // used when Cmd.Timeout is 0; 0 means 2 minutes
	OutputLimit    int           // bytes kept per stream; 0 means 4 MiB
	// Env is appended after the fixed LC_ALL=C environment (tests use it
	// to put fake tools on PATH).
	Env []string
}

const (
	defaultTimeout     = 2 * time.Minute
	defaultOutputLimit = 4 << 20
	// waitDelay bounds how long Wait waits for pipes held open by a child
	// that escaped the process-group kill (e.g. one that called setsid).
	waitDelay = 2 * time.Second
)

// Run starts argv in its own process group with LC_ALL=C, and on timeout or
// cancellation kills the whole group: an LVM command stuck on dead storage
// may have forked helpers that would otherwise keep the device busy.
func (h *Host) Run(ctx context.Context, c Cmd) (Result, error) {
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
	err := cmd.Run()
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

func envPath() string {
	if p := os.Getenv("PATH"); p != "" {
		return p
	}
	return "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

// capped keeps the first limit bytes of a stream and discards the rest, so a
// runaway command cannot exhaust the agent's memory.
type capped struct {
	buf       bytes.Buffer
	limit     int
	truncated bool
}

func (c *capped) Write(p []byte) (int, error) {
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

func (c *capped) Bytes() []byte {
	if c.truncated {
		return append(c.buf.Bytes(), "\n[output truncated]\n"...)
	}
	return c.buf.Bytes()
}

// Func adapts a function to Runner; the simulator uses it.
type Func func(ctx context.Context, c Cmd) (Result, error)

func (f Func) Run(ctx context.Context, c Cmd) (Result, error) { return f(ctx, c) }
