package recovery

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/aos-agent/aos-agent/state"
)

const ioTimeout = 10 * time.Second

var killHookArgv = []string{"/usr/local/sbin/aos-agent", "kill-hook"}

// simCluster is h1 and h2 sharing VG vol, h1 holding lv1 ex with guest vm1
// running on it. With hook, h1's lvmlockctl_kill_command is the kill hook and
// runs Fence on h1's simulated tools.
type simCluster struct {
	t        *testing.T
	clk      *sim.ManualClock
	c        *sim.Cluster
	stateDir string
	journals []*Journal
	step     time.Duration
}

func newSimCluster(t *testing.T, hook, noWatchdog bool) *simCluster {
	t.Helper()
	s := &simCluster{t: t, clk: sim.NewManualClock(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)), stateDir: t.TempDir()}
	o := sim.Options{
		Hosts:     []sim.HostSpec{{Name: "h1", HostID: 1, NoWatchdog: noWatchdog}, {Name: "h2", HostID: 2}},
		IOTimeout: ioTimeout, JoinTime: -1, Clock: s.clk,
	}
	if hook {
		o.RunKill = s.runKill
	}
	s.c = sim.NewCluster(o)
	s.ok("h1", "vgchange --lock-start vol")
	s.ok("h2", "vgchange --lock-start vol")
	s.ok("h1", "lvcreate -an -n lv1 -L 64m vol")
	s.ok("h1", "lvchange -aey vol/lv1")
	held, err := state.OpenHeld(s.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := held.Set(state.HeldLV{VG: "vol", LV: "lv1", Mode: state.Exclusive}); err != nil {
		t.Fatal(err)
	}
	s.c.DefineDomain("h1", "vm1", "lv1")
	s.ok("h1", "virsh start vm1")
	if hook {
		s.c.SetKillCommand("h1", killHookArgv)
	}
	return s
}

// runKill is what lvmlockctl does on h1: run the configured command with
// the VG appended. Only the kill hook is configured here.
func (s *simCluster) runKill(host string, argv []string) int {
	if !slices.Equal(argv[:len(argv)-1], killHookArgv) {
		s.t.Errorf("kill command %q", argv)
		return 1
	}
	j, err := Fence(context.Background(), Deps{Runner: s.c.Host(host), StateDir: s.stateDir,
		MultipathAlias: "lun0", StepTimeout: s.step, Log: s.t.Logf}, argv[len(argv)-1])
	s.journals = append(s.journals, j)
	if err != nil {
		return 1
	}
	return 0
}

func (s *simCluster) run(host, cmd string) error {
	_, err := s.c.Host(host).Run(context.Background(), run.Cmd{Argv: strings.Fields(cmd)})
	return err
}

func (s *simCluster) ok(host, cmd string) {
	s.t.Helper()
	if err := s.run(host, cmd); err != nil {
		s.t.Fatalf("%s on %s: %v", cmd, host, err)
	}
}

// With the kill hook h1 is not reset: at 8 × io_timeout its LV is error-
// tabled, its guest paused, its locks dropped, and h2 can take the LV.
func TestSimKillHookFencesInsteadOfReset(t *testing.T) {
	s := newSimCluster(t, true, false)
	s.c.FailPaths("h1", true)
	s.clk.Advance(8 * ioTimeout)
	st := s.c.State("h1")
	if st.KillRuns != 1 {
		t.Fatalf("after the kill: st.KillRuns = %v, want 1", st.KillRuns)
	}
	if st.Active["lv1"] != "error" {
		t.Fatalf("after the kill: st.Active[\"lv1\"] = %q, want \"error\"", st.Active["lv1"])
	}
	if len(st.Locks) != 0 {
		t.Fatalf("after the kill: len(st.Locks) = %v, want 0", len(st.Locks))
	}
	if st.LockspaceJoined {
		t.Fatal("after the kill: st.LockspaceJoined = true, want false")
	}
	if st.Domains["vm1"] != "paused" {
		t.Fatalf("after the kill: st.Domains[\"vm1\"] = %q, want \"paused\"", st.Domains["vm1"])
	}
	if len(s.journals) != 1 {
		t.Fatalf("journals: len(s.journals) = %v, want 1", len(s.journals))
	}
	if s.journals[0].Phase != PhaseFenced {
		t.Fatalf("journals: s.journals[0].Phase = %v, want %v", s.journals[0].Phase, PhaseFenced)
	}
	j := readJournal(t, s.stateDir)
	if !j.QueueingDisabled || len(j.LVs) != 1 || j.LVs[0].UUID == "" || j.LVs[0].LeaseVersion != 1 ||
		j.LVs[0] != (FencedLV{LV: "lv1", Device: "vol-lv1", Mode: state.Exclusive, Fenced: true, UUID: j.LVs[0].UUID, LeaseVersion: 1}) {
		t.Fatalf("journal %+v", j)
	}
	s.clk.Advance(10 * ioTimeout)
	if st := s.c.State("h1"); st.Resets != 0 {
		t.Fatalf("host reset despite the fence: %+v", st)
	}
	s.ok("h2", "lvchange -aey vol/lv1")
}

// Without a working kill command the watchdog resets h1.
func TestSimWithoutKillHookHostIsReset(t *testing.T) {
	s := newSimCluster(t, false, false)
	s.c.FailPaths("h1", true)
	s.clk.Advance(12 * ioTimeout)
	{
		st := s.c.State("h1")
		if st.Resets != 1 {
			t.Fatalf("want a reset: st.Resets = %v, want 1", st.Resets)
		}
		if len(st.Active) != 0 {
			t.Fatalf("want a reset: len(st.Active) = %v, want 0", len(st.Active))
		}
	}
}

// multipathd hung: its steps time out, the wipe and verify still fence h1.
func TestSimHungMultipathdStillFences(t *testing.T) {
	s := newSimCluster(t, true, false)
	s.step = 50 * time.Millisecond
	s.c.HangCommands("h1", "multipathd")
	s.c.FailPaths("h1", true)
	s.clk.Advance(12 * ioTimeout)
	{
		st := s.c.State("h1")
		if st.Resets != 0 {
			t.Fatalf("st.Resets = %v, want 0", st.Resets)
		}
		if st.Active["lv1"] != "error" {
			t.Fatalf("st.Active[\"lv1\"] = %q, want \"error\"", st.Active["lv1"])
		}
		if len(st.Locks) != 0 {
			t.Fatalf("len(st.Locks) = %v, want 0", len(st.Locks))
		}
	}
	{
		j := s.journals[0]
		if j.Phase != PhaseFenced {
			t.Fatalf("journal: j.Phase = %v, want %v", j.Phase, PhaseFenced)
		}
		if len(j.Failures) != 1 {
			t.Fatalf("journal: len(j.Failures) = %v, want 1", len(j.Failures))
		}
		if !strings.HasPrefix(j.Failures[0], "multipathd disablequeueing map lun0") {
			t.Fatalf("journal: j.Failures[0] = %q, want it to start with \"multipathd disablequeueing map lun0\"", j.Failures[0])
		}
	}
}

// dmsetup hung: nothing can be listed or verified, so the hook exits 1 and
// h1 is reset, never left with dropped locks and a live LV.
func TestSimFenceFailureLeavesHostToWatchdog(t *testing.T) {
	s := newSimCluster(t, true, false)
	s.step = 50 * time.Millisecond
	s.c.HangCommands("h1", "dmsetup table")
	s.c.FailPaths("h1", true)
	s.clk.Advance(8 * ioTimeout)
	{
		st := s.c.State("h1")
		if st.KillRuns != 1 {
			t.Fatalf("st.KillRuns = %v, want 1", st.KillRuns)
		}
		if len(st.Locks) != 1 {
			t.Fatalf("len(st.Locks) = %v, want 1", len(st.Locks))
		}
		if s.journals[0].Phase != PhaseFenceFailed {
			t.Fatalf("s.journals[0].Phase = %v, want %v", s.journals[0].Phase, PhaseFenceFailed)
		}
	}
	s.clk.Advance(4 * ioTimeout)
	if st := s.c.State("h1"); st.Resets != 1 {
		t.Fatalf("want a reset: %+v", st)
	}
}

// With sanlock -w 0 (Debian's default) and no kill command, h2 gets lv1
// at expiry while it is still linear on h1: the split brain. With the kill
// hook, h1's lv1 is error-tabled by then.
func TestSimSplitBrainPreventedByKillHook(t *testing.T) {
	for _, hook := range []bool{false, true} {
		s := newSimCluster(t, hook, true)
		s.c.FailPaths("h1", true)
		var h2Got time.Duration
		for at := time.Duration(0); at <= 14*ioTimeout; at += time.Second {
			if err := s.run("h2", "lvchange -aey vol/lv1"); err == nil {
				h2Got = at
				break
			} else if !errors.As(err, new(*run.Error)) {
				t.Fatal(err)
			}
			s.clk.Advance(time.Second)
		}
		h1 := s.c.State("h1")
		if h2Got == 0 {
			t.Fatalf("hook: h2Got = %v, want != 0", h2Got)
		}
		if s.c.State("h2").Locks["lv1"] != "ex" {
			t.Fatalf("hook: s.c.State(\"h2\").Locks[\"lv1\"] = %q, want \"ex\"", s.c.State("h2").Locks["lv1"])
		}
		if !hook && (h1.Active["lv1"] != "linear" || h2Got != 14*ioTimeout) {
			t.Fatalf("without the hook want the split brain at 14 × io_timeout, got h2 at %v and h1 %+v", h2Got, h1)
		}
		// The fence does not hand lv1 over sooner: the released lease
		// cannot be written to the dead storage, h2 waits for the expiry.
		if hook && (h1.Active["lv1"] != "error" || h2Got != 14*ioTimeout || h1.Resets != 0) {
			t.Fatalf("with the hook h2 got lv1 at %v while h1 had %+v", h2Got, h1)
		}
	}
}

// BenchmarkFenceSim fences 20 active LVs on a simulated host: Fence's own
// cost next to the ~40 s grace (real hosts add each command's run time).
func BenchmarkFenceSim(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, JoinTime: -1})
		h := c.Host("h1")
		cmds := []string{"vgchange --lock-start vol"}
		for i := range 20 {
			lv := "lv" + string(rune('a'+i))
			cmds = append(cmds, "lvcreate -an -n "+lv+" -L 8m vol", "lvchange -aey vol/"+lv)
		}
		for _, cmd := range cmds {
			if _, err := h.Run(context.Background(), run.Cmd{Argv: strings.Fields(cmd)}); err != nil {
				b.Fatal(cmd, err)
			}
		}
		dir := b.TempDir()
		b.StartTimer()
		if j, err := Fence(context.Background(), Deps{Runner: h, StateDir: dir, MultipathAlias: "lun0"}, "vol"); err != nil || len(j.LVs) != 20 {
			b.Fatal(err)
		}
	}
}
