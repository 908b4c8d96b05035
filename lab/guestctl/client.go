package guestctl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// ErrClosed is returned for requests still waiting when the channel closes.
var ErrClosed = errors.New("guestctl: channel closed")

const (
	defaultTimeout = 2 * time.Minute
	// transportGrace is how long past a command's own timeout the client
	// waits for the guest's answer before giving up on the channel.
	transportGrace = 15 * time.Second
)

// Client runs commands on the guest at the other end of conn. It is a
// run.Runner; it is safe for concurrent use.
type Client struct {
	// DefaultTimeout is used when Cmd.Timeout is 0; 0 means 2 minutes.
	DefaultTimeout time.Duration

	conn   io.ReadWriteCloser
	nextID atomic.Uint64

	mu      sync.Mutex // guards pending and closed
	pending map[uint64]chan response
	closed  error
	// writeMu serialises requests on conn. It is never held together with
	// mu, so a slow write cannot stop answers from being delivered.
	writeMu sync.Mutex
	enc     *json.Encoder
	done    chan struct{}
}

// NewClient starts reading answers from conn.
func NewClient(conn io.ReadWriteCloser) *Client {
	c := &Client{conn: conn, pending: map[uint64]chan response{}, enc: json.NewEncoder(conn), done: make(chan struct{})}
	go c.readLoop()
	return c
}

func (c *Client) readLoop() {
	defer close(c.done)
	sc := bufio.NewScanner(c.conn)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var resp response
		if err := json.Unmarshal(sc.Bytes(), &resp); err != nil {
			continue // console noise cannot appear here, but a torn line can on reconnect
		}
		c.mu.Lock()
		ch, ok := c.pending[resp.ID]
		delete(c.pending, resp.ID)
		c.mu.Unlock()
		if ok {
			ch <- resp // buffered
		}
	}
	c.fail(ErrClosed)
}

func (c *Client) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed == nil {
		c.closed = err
	}
	for id, ch := range c.pending {
		delete(c.pending, id)
		close(ch)
	}
}

// Close closes the channel; waiting requests fail with ErrClosed.
func (c *Client) Close() error {
	err := c.conn.Close()
	<-c.done
	return err
}

// Run sends c to the guest and waits for its result. Non-zero exits, guest
// timeouts and start failures come back as *run.Error as run.Local reports
// them; if ctx ends first the guest is told to kill the command.
func (c *Client) Run(ctx context.Context, cmd run.Cmd) (run.Result, error) {
	if len(cmd.Argv) == 0 {
		return run.Result{}, errors.New("guestctl: empty argv")
	}
	timeout := cmd.Timeout
	if timeout == 0 {
		timeout = c.DefaultTimeout
	}
	if timeout == 0 {
		timeout = defaultTimeout
	}
	id := c.nextID.Add(1)
	ch := make(chan response, 1)
	req := request{ID: id, Argv: cmd.Argv, Stdin: cmd.Stdin, TimeoutMS: timeout.Milliseconds()}
	if err := c.send(req, ch); err != nil {
		return run.Result{}, &run.Error{Argv: cmd.Argv, ExitCode: -1, Err: err}
	}
	wait := time.NewTimer(timeout + transportGrace)
	defer wait.Stop()
	select {
	case resp, ok := <-ch:
		if !ok {
			return run.Result{}, &run.Error{Argv: cmd.Argv, ExitCode: -1, Err: c.closedErr()}
		}
		return toResult(cmd.Argv, resp)
	case <-ctx.Done():
		c.abandon(id)
		return run.Result{}, &run.Error{Argv: cmd.Argv, ExitCode: -1, Err: ctx.Err()}
	case <-wait.C:
		c.abandon(id)
		return run.Result{}, &run.Error{Argv: cmd.Argv, ExitCode: -1,
			Err: fmt.Errorf("guestctl: no answer %v after the command's timeout", transportGrace)}
	}
}

func (c *Client) send(req request, ch chan response) error {
	c.mu.Lock()
	if c.closed != nil {
		c.mu.Unlock()
		return c.closed
	}
	if ch != nil {
		c.pending[req.ID] = ch
	}
	c.mu.Unlock()
	c.writeMu.Lock()
	err := c.enc.Encode(req)
	c.writeMu.Unlock()
	if err != nil {
		c.mu.Lock()
		delete(c.pending, req.ID)
		c.mu.Unlock()
		return fmt.Errorf("guestctl: send: %w", err)
	}
	return nil
}

// abandon forgets a request and asks the guest to kill it.
func (c *Client) abandon(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
	_ = c.send(request{ID: id, Cancel: true}, nil)
}

func (c *Client) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func toResult(argv []string, resp response) (run.Result, error) {
	res := run.Result{Stdout: resp.Stdout, Stderr: resp.Stderr, ExitCode: resp.ExitCode, Duration: time.Duration(resp.DurationNS)}
	switch {
	case resp.TimedOut:
		return res, &run.Error{Argv: argv, ExitCode: -1, Stderr: string(resp.Stderr), TimedOut: true, Err: context.DeadlineExceeded}
	case resp.Error != "":
		return res, &run.Error{Argv: argv, ExitCode: -1, Stderr: string(resp.Stderr), Err: errors.New(resp.Error)}
	case resp.ExitCode != 0:
		return res, &run.Error{Argv: argv, ExitCode: resp.ExitCode, Stderr: string(resp.Stderr)}
	}
	return res, nil
}
