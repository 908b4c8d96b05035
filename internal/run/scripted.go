package run

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// TB is the part of testing.TB that Scripted needs (kept small so this
// non-test file does not import package testing).
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Cleanup(func())
}

// Step is one expected command and what it answers.
type Step struct {
	Argv     []string
	Stdout   string
	Stderr   string
	ExitCode int
	Err      error // returned as is instead of an exit (e.g. a timeout *Error)
}

// Scripted is a fake Runner for unit tests: it expects exactly the given argv,
// in order, and fails the test on any other call or on steps left over.
type Scripted struct {
	t        TB
	mu       sync.Mutex
	steps    []Step
	calls    [][]string
	anyOrder bool
}

// NewScripted returns a Scripted runner that checks at cleanup that every
// step ran.
func NewScripted(t TB, steps ...Step) *Scripted {
	t.Helper()
	s := &Scripted{t: t, steps: steps}
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, st := range s.steps {
			t.Errorf("expected command never ran: %s", strings.Join(st.Argv, " "))
		}
	})
	return s
}

// AnyOrder accepts the steps in any order, for callers that run commands
// concurrently; steps with the same argv are still answered in order.
func (s *Scripted) AnyOrder() *Scripted {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.anyOrder = true
	return s
}

// Expect appends steps.
func (s *Scripted) Expect(steps ...Step) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps = append(s.steps, steps...)
}

// Calls returns every argv run so far.
func (s *Scripted) Calls() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func (s *Scripted) Run(ctx context.Context, c Cmd) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, slices.Clone(c.Argv))
	if len(s.steps) == 0 {
		s.t.Errorf("unexpected command: %s", c)
		return Result{ExitCode: 127}, &Error{Argv: c.Argv, ExitCode: 127, Stderr: "unexpected command"}
	}
	i := 0
	if s.anyOrder {
		i = slices.IndexFunc(s.steps, func(st Step) bool { return slices.Equal(st.Argv, c.Argv) })
	}
	if i < 0 {
		s.t.Errorf("unexpected command: %s", c)
		return Result{ExitCode: 127}, &Error{Argv: c.Argv, ExitCode: 127, Stderr: "unexpected command"}
	}
	st := s.steps[i]
	if !slices.Equal(st.Argv, c.Argv) {
		s.t.Errorf("command mismatch:\n got  %q\n want %q", c.Argv, st.Argv)
		return Result{ExitCode: 127}, &Error{Argv: c.Argv, ExitCode: 127, Stderr: "argv mismatch"}
	}
	s.steps = slices.Delete(s.steps, i, i+1)
	res := Result{Stdout: []byte(st.Stdout), Stderr: []byte(st.Stderr), ExitCode: st.ExitCode}
	if st.Err != nil {
		return res, st.Err
	}
	if st.ExitCode != 0 {
		return res, &Error{Argv: c.Argv, ExitCode: st.ExitCode, Stderr: st.Stderr}
	}
	return res, nil
}

// String lists the remaining steps (for debugging failed tests).
func (s *Scripted) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("%d steps left", len(s.steps))
}
