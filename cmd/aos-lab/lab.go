package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lab/guestctl"
)

func init() {
	register("lab-guest", "serve the lab host's commands over virtio-serial (lab guests only)", labGuest)
}

// labGuest runs inside a lab guest as a systemd service. The port reads EOF
// while no host is connected, so it is reopened until the service stops.
func labGuest(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("lab-guest", flag.ContinueOnError)
	port := fs.String("port", "/dev/virtio-ports/aos-lab", "virtio-serial port to serve")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	for ctx.Err() == nil {
		if err := serveLabPort(ctx, *port); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, io.EOF) {
			fmt.Fprintf(os.Stderr, "lab-guest: %v\n", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Millisecond):
		}
	}
	return 0
}

func serveLabPort(ctx context.Context, port string) error {
	f, err := os.OpenFile(port, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	defer f.Close()
	return guestctl.Serve(ctx, f, &run.Local{})
}
