package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/sim"
	"go.uber.org/zap"
)

// The daemon refuses mutating calls at once while its lease storage is
// lost or a VG is fenced, and get_status shows the fence journal.
func TestGateAndRecoveryStatus(t *testing.T) {
	clock := sim.NewManualClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, VG: "vol", Clock: clock, IOTimeout: 10 * time.Second})
	host := c.Host("h1")
	ctx := context.Background()
	started := make(chan error, 1)
	go func() { started <- lvm.New(host, lvm.Options{VolumeGroups: []string{"vol"}}).LockStart(ctx, "vol") }()
	// The join takes simulated time: advance the clock until it is done.
join:
	for i := 0; i < 100; i++ {
		clock.Advance(time.Second)
		select {
		case err := <-started:
			if err != nil {
				t.Fatal(err)
			}
			break join
		default:
			time.Sleep(time.Millisecond)
		}
	}

	cfg := config.Default()
	cfg.Host, cfg.StateDir = "h1", t.TempDir()
	cfg.RuntimeDir = cfg.StateDir // one place, as the fences these tests run use
	cfg.LVM.VolumeGroups, cfg.LVM.MultipathAlias = []string{"vol"}, "lun0"
	cfg.Metrics.Listen = ""
	d, err := New(cfg, Options{Runner: host, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if s := d.monitor.Poll(ctx); s.LockspaceState("vol") != "joined" {
		t.Fatalf("lockspace %s", s.LockspaceState("vol"))
	}
	if err := d.gate(); err != nil {
		t.Fatalf("healthy host gated: %v", err)
	}
	if st := d.recoveryStatus(); st["state"] != "idle" {
		t.Fatal(st)
	}

	c.FailLeaseStorage("h1")
	clock.Advance(81 * time.Second) // past 8 × io_timeout: renewal failed
	d.monitor.Poll(ctx)
	if err := d.gate(); !errors.Is(err, errdefs.ErrLockspaceLost) {
		t.Fatalf("want LockspaceLost, got %v", err)
	}

	journal := `{"version":1,"vg":"vol","phase":"fenced","lvs":[{"lv":"v1","device":"vol-v1","mode":"ex","fenced":true}]}`
	if err := os.WriteFile(filepath.Join(cfg.StateDir, "recovery-vol.json"), []byte(journal), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.gate(); !errors.Is(err, errdefs.ErrRecoveryInProgress) {
		t.Fatalf("want RecoveryInProgress, got %v", err)
	}
	if st := d.recoveryStatus(); st["state"] != "fenced" {
		t.Fatal(st)
	}
	if err := os.WriteFile(filepath.Join(cfg.StateDir, "recovery-vol.json"), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.gate(); !errors.Is(err, errdefs.ErrRecoveryInProgress) {
		t.Fatalf("an unreadable journal must still gate: %v", err)
	}
}

// A host with nothing started and nothing active answers get_status with
// empty lists, not JSON null: the driver iterates them.
func TestStatusListsAreNeverNull(t *testing.T) {
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, VG: "vol",
		Clock: sim.NewManualClock(time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)), IOTimeout: 10 * time.Second})
	cfg := config.Default()
	cfg.Host, cfg.StateDir = "h1", t.TempDir()
	cfg.RuntimeDir = cfg.StateDir // one place, as the fences these tests run use
	cfg.LVM.VolumeGroups, cfg.LVM.MultipathAlias = []string{"vol"}, ""
	cfg.Metrics.Listen = ""
	d, err := New(cfg, Options{Runner: c.Host("h1"), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := d.status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var reply map[string]json.RawMessage
	if err := json.Unmarshal(b, &reply); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"active_volumes": "[]", "multipath": "null", "capacity": `[{"volume_group":"vol","size_bytes":2143289344,"free_bytes":1874853888}]`} {
		if got := string(reply[key]); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	// A configured VG is listed even before its lockspace exists.
	if got := string(reply["lockspaces"]); !strings.Contains(got, `"state":"absent"`) {
		t.Errorf("lockspaces = %s, want the VG as absent", got)
	}
}

// A failed fence, then the watchdog's reset: the fence-failed journal of the
// earlier boot no longer gates anything once the agent starts (the reset
// did the fence's job); it is kept aside for the operator.
func TestEarlierBootsFenceDoesNotGateForever(t *testing.T) {
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, VG: "vol", JoinTime: -1})
	cfg := config.Default()
	cfg.Host, cfg.StateDir = "h1", t.TempDir()
	cfg.RuntimeDir = cfg.StateDir // one place, as the fences these tests run use
	cfg.LVM.VolumeGroups = []string{"vol"}
	cfg.Metrics.Listen = ""
	journal := `{"version":1,"vg":"vol","phase":"fence-failed","boot_id":"a-boot-before-the-reset","lvs":[{"lv":"v1","device":"vol-v1","mode":"ex","fenced":false}]}`
	if err := os.WriteFile(filepath.Join(cfg.StateDir, "recovery-vol.json"), []byte(journal), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, Options{Runner: c.Host("h1"), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.gate(); !errors.Is(err, errdefs.ErrRecoveryInProgress) {
		t.Fatalf("before the agent starts: %v", err)
	}
	d.settleEarlierBoots() // the first thing Run does
	if err := d.gate(); err != nil {
		t.Fatalf("gated by the fence of an earlier boot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, "recovery-vol.earlier-boot.json")); err != nil {
		t.Fatalf("the earlier boot's journal is not kept: %v", err)
	}
}

// The kill hook could not write the state directory and left its journal
// in the runtime directory: the daemon knows the VG is fenced all the same.
func TestFenceJournalInTheRuntimeDirGates(t *testing.T) {
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, VG: "vol", JoinTime: -1})
	cfg := config.Default()
	cfg.Host, cfg.StateDir, cfg.RuntimeDir = "h1", t.TempDir(), t.TempDir()
	cfg.LVM.VolumeGroups = []string{"vol"}
	cfg.Metrics.Listen = ""
	journal := `{"version":1,"vg":"vol","phase":"fenced","lvs":[{"lv":"v1","device":"vol-v1","mode":"ex","fenced":true}]}`
	if err := os.WriteFile(filepath.Join(cfg.RuntimeDir, "recovery-vol.json"), []byte(journal), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := New(cfg, Options{Runner: c.Host("h1"), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.gate(); !errors.Is(err, errdefs.ErrRecoveryInProgress) {
		t.Fatalf("journal in the runtime dir: %v, want RecoveryInProgress", err)
	}
	if st := d.recoveryStatus(); st["state"] != "fenced" {
		t.Fatalf("recovery status %v", st)
	}
}
