package guestctl

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

// pair connects a Client to a Serve loop running real commands on this
// machine through run.Local, the way the guest daemon does.
func pair(t *testing.T) *Client {
	t.Helper()
	hostEnd, guestEnd := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- Serve(context.Background(), guestEnd, &run.Local{}) }()
	c := NewClient(hostEnd)
	t.Cleanup(func() {
		c.Close()
		guestEnd.Close()
		<-served
	})
	return c
}

func TestRunReturnsOutputAndStdin(t *testing.T) {
	c := pair(t)
	res, err := c.Run(context.Background(), run.Cmd{Argv: []string{"cat"}, Stdin: []byte("hello\n")})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "hello\n" {
		t.Fatalf("got: string(res.Stdout) = %q, want \"hello\\n\"", string(res.Stdout))
	}
	if res.ExitCode != 0 {
		t.Fatalf("got: res.ExitCode = %v, want 0", res.ExitCode)
	}
}

func TestNonZeroExitIsRunError(t *testing.T) {
	c := pair(t)
	_, err := c.Run(context.Background(), run.Cmd{Argv: []string{"ls", "/nonexistent-lab-path"}})
	var rerr *run.Error
	if !errors.As(err, &rerr) {
		t.Fatal("got: errors.As(err, &rerr) = false, want true")
	}
	if rerr.ExitCode != 2 {
		t.Fatalf("got: rerr.ExitCode = %v, want 2", rerr.ExitCode)
	}
	if rerr.Stderr == "" {
		t.Fatalf("got: rerr.Stderr = %v, want != \"\"", rerr.Stderr)
	}
	if rerr.TimedOut {
		t.Fatal("got: rerr.TimedOut = true, want false")
	}
}

func TestGuestTimeoutIsCommandTimeout(t *testing.T) {
	c := pair(t)
	_, err := c.Run(context.Background(), run.Cmd{Argv: []string{"sleep", "30"}, Timeout: 50 * time.Millisecond})
	var rerr *run.Error
	if !errors.As(err, &rerr) {
		t.Fatal("got: errors.As(err, &rerr) = false, want true")
	}
	if !rerr.TimedOut {
		t.Fatal("got: rerr.TimedOut = false, want true")
	}
	if !errors.Is(err, errdefs.ErrCommandTimeout) {
		t.Fatalf("got: err = %v, want errdefs.ErrCommandTimeout", err)
	}
}

func TestStartFailure(t *testing.T) {
	c := pair(t)
	_, err := c.Run(context.Background(), run.Cmd{Argv: []string{"/nonexistent/lab-tool"}})
	var rerr *run.Error
	if !errors.As(err, &rerr) {
		t.Fatal("got: errors.As(err, &rerr) = false, want true")
	}
	if rerr.ExitCode != -1 {
		t.Fatalf("got: rerr.ExitCode = %v, want -1", rerr.ExitCode)
	}
	if rerr.Err == nil {
		t.Fatal("got: rerr.Err = nil, want non-nil")
	}
}

func TestCancelKillsGuestCommand(t *testing.T) {
	c := pair(t)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel only once the command runs, so the cancel request is exercised.
		for {
			c.mu.Lock()
			n := len(c.pending)
			c.mu.Unlock()
			if n > 0 {
				break
			}
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	_, err := c.Run(ctx, run.Cmd{Argv: []string{"sleep", "60"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	// The guest ends the command: a later request on the channel still works
	// and the pair's cleanup (which waits for every command) returns.
	if _, err := c.Run(context.Background(), run.Cmd{Argv: []string{"true"}}); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentRequestsGetTheirOwnAnswers(t *testing.T) {
	c := pair(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := string(rune('a'+i)) + "\n"
			res, err := c.Run(context.Background(), run.Cmd{Argv: []string{"echo", want[:1]}})
			if err != nil || string(res.Stdout) != want {
				t.Errorf("request %d: got %q, %v", i, res.Stdout, err)
			}
		}()
	}
	wg.Wait()
}

func TestCloseFailsWaitingRequests(t *testing.T) {
	hostEnd, guestEnd := net.Pipe()
	c := NewClient(hostEnd)
	go func() {
		// A guest that reads but never answers.
		buf := make([]byte, 4096)
		for {
			if _, err := guestEnd.Read(buf); err != nil {
				return
			}
		}
	}()
	errc := make(chan error, 1)
	go func() {
		_, err := c.Run(context.Background(), run.Cmd{Argv: []string{"true"}})
		errc <- err
	}()
	for {
		c.mu.Lock()
		n := len(c.pending)
		c.mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v", err)
	}
	if _, err := c.Run(context.Background(), run.Cmd{Argv: []string{"true"}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
	guestEnd.Close()
}
