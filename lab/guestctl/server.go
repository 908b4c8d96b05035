package guestctl

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// maxLine bounds one request line (stdin included).
const maxLine = 64 << 20

// Serve answers requests read from rw until it is closed, hits EOF or ctx
// ends, running each request concurrently on r. On return it has killed and
// waited for every command it started.
func Serve(ctx context.Context, rw io.ReadWriter, r run.Runner) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex // guards inFlight
		writeMu  sync.Mutex // one answer at a time on rw; never held with mu
		inFlight = map[uint64]context.CancelFunc{}
		enc      = json.NewEncoder(rw)
	)
	// On return, kill what still runs (the host is gone), then wait for it.
	defer wg.Wait()
	ctx, cancelAll := context.WithCancel(ctx)
	defer cancelAll()
	reply := func(resp response) {
		mu.Lock()
		delete(inFlight, resp.ID)
		mu.Unlock()
		writeMu.Lock()
		defer writeMu.Unlock()
		_ = enc.Encode(resp) // a dead channel also ends the read loop
	}
	sc := bufio.NewScanner(rw)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			continue // a partial line left over from a previous host connection
		}
		mu.Lock()
		if req.Cancel {
			if cancel, ok := inFlight[req.ID]; ok {
				cancel()
			}
			mu.Unlock()
			continue
		}
		reqCtx, cancel := context.WithCancel(ctx)
		inFlight[req.ID] = cancel
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			reply(execute(reqCtx, r, req))
		}()
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

func execute(ctx context.Context, r run.Runner, req request) response {
	if len(req.Argv) == 0 {
		return response{ID: req.ID, ExitCode: -1, Error: "empty argv"}
	}
	res, err := r.Run(ctx, run.Cmd{
		Argv:    req.Argv,
		Stdin:   req.Stdin,
		Timeout: time.Duration(req.TimeoutMS) * time.Millisecond,
	})
	resp := response{
		ID:         req.ID,
		Stdout:     res.Stdout,
		Stderr:     res.Stderr,
		ExitCode:   res.ExitCode,
		DurationNS: int64(res.Duration),
	}
	var rerr *run.Error
	switch {
	case err == nil:
	case errors.As(err, &rerr):
		resp.ExitCode, resp.TimedOut = rerr.ExitCode, rerr.TimedOut
		if rerr.Err != nil && !rerr.TimedOut {
			resp.Error = rerr.Err.Error()
		}
	default:
		resp.ExitCode, resp.Error = -1, err.Error()
	}
	return resp
}
