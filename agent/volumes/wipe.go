package volumes

import (
	"context"
	"strconv"
	"time"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
)

// withCopySlot runs f, a wipe or a copy, once fewer than CopySlots run: the
// request waits (its LV already locked here) rather than pile another full
// stream onto the LUN that carries the leases.
func (s *Service) withCopySlot(ctx context.Context, f func() error) error {
	select {
	case s.copySlots <- struct{}{}:
	case <-ctx.Done():
		return errdefs.Wrap(errdefs.ErrCommandTimeout, ctx.Err(), "gave up waiting for a free copy slot")
	}
	defer func() { <-s.copySlots }()
	return f()
}

// CommandWiper clears a device with dd (zero) or shred, as cinder's LVM
// driver does, through the runner.
type CommandWiper struct {
	Runner run.Runner
	// Timeout bounds one wipe; 0 means 1 hour (a large volume on a slow
	// array takes a long time, but never forever).
	Timeout time.Duration
}

func (w CommandWiper) Wipe(ctx context.Context, dev, method string, bytes uint64) error {
	timeout := w.Timeout
	if timeout == 0 {
		timeout = time.Hour
	}
	var argv []string
	switch method {
	case ClearZero:
		// count_bytes lets the count be any byte length; direct I/O keeps
		// the page cache out of it and fsync makes the zeroes durable.
		argv = []string{"dd", "if=/dev/zero", "of=" + dev, "bs=1M", "count=" + strconv.FormatUint(bytes, 10),
			"iflag=count_bytes", "oflag=direct", "conv=fsync", "status=none"}
	case ClearShred:
		argv = []string{"shred", "-n", "3", "-s", strconv.FormatUint(bytes, 10), dev}
	default:
		return errdefs.Errorf(errdefs.ErrInvalidArgument, "unknown clear method %q", method)
	}
	_, err := w.Runner.Run(ctx, run.Cmd{Argv: argv, Timeout: timeout})
	return err
}
