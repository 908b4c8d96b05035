//go:build realsanlock

package multipath

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// The real multipathd 0.9.4 client with no daemon running exits 1 and
// prints nothing (multipathd/uxclnt.c); that must read as ErrNotRunning,
// and the argv must be accepted far enough to try the socket.
func TestRealMultipathdWithoutDaemon(t *testing.T) {
	if _, err := exec.LookPath("multipathd"); err != nil {
		t.Fatal("multipathd not installed (scripts/deps.d/hostcli.pkgs):", err)
	}
	if exec.Command("pgrep", "-x", "multipathd").Run() == nil {
		t.Fatal("a multipathd runs on this host; this test needs none")
	}
	c := New(&run.Local{}, 30*time.Second)
	ctx := context.Background()
	if _, err := c.Maps(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("maps: %v", err)
	}
	if _, err := c.Paths(ctx); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("paths: %v", err)
	}
	if err := c.DisableQueueing(ctx, "lun0"); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("disablequeueing: %v", err)
	}
}
