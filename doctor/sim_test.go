package doctor

import (
	"context"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/sim"
)

// simHost answers from the simulator; the three commands it does not model
// (pvs, lvm version, timedatectl) come from fixtures.
func simHost(t *testing.T, h *sim.Host) run.Runner {
	return run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		switch strings.Join(c.Argv, " ") {
		case "pvs --reportformat json -o pv_name,vg_name":
			return run.Result{Stdout: []byte(healthy(t).pvs)}, nil
		case "lvm version":
			return run.Result{Stdout: []byte(fixture.Text(t, "lvm-version.2.03.16.txt"))}, nil
		case "timedatectl show -p NTPSynchronized --value":
			return run.Result{Stdout: []byte("yes\n")}, nil
		}
		return h.Run(ctx, c)
	})
}

func TestSimulatorWatchdogHostAndDebianDefaultHost(t *testing.T) {
	c := sim.NewCluster(sim.Options{
		Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}, {Name: "h2", HostID: 2, NoWatchdog: true}},
		Clock: sim.NewScaledClock(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), 1000),
	})
	ctx := context.Background()
	if _, err := c.Host("h1").Run(ctx, run.Cmd{Argv: []string{"vgchange", "--lock-start", "vol"}}); err != nil {
		t.Fatal(err)
	}

	// h1: sanlock -w 1 with wdmd and a watchdog device, lockspace joined.
	root := configuredRoot(t)
	write(t, root, "dev/watchdog", nil)
	byName := func(checks []Check) map[string]Check {
		m := map[string]Check{}
		for _, ch := range checks {
			m[ch.Name] = ch
		}
		return m
	}
	env := Env{Root: root, Runner: simHost(t, c.Host("h1")), Timeout: time.Minute, VolumeGroups: []string{"vol"}, MultipathAlias: "lun0"}
	h1 := byName(Run(ctx, env))
	for _, name := range []string{"fencing", "lockspace_vol", "multipath_paths", "sanlock_running", "lvmlockd_running", "wdmd_running"} {
		if h1[name].Status != Pass {
			t.Errorf("h1 %s: %s %s", name, h1[name].Status, h1[name].Detail)
		}
	}
	if !strings.Contains(h1["fencing"].Detail, "use_watchdog=1") {
		t.Errorf("h1 fencing: %s", h1["fencing"].Detail)
	}

	// h2: sanlock -w 0, Debian's lvm.conf (no kill command), not started.
	root2 := t.TempDir()
	write(t, root2, "etc/lvm/lvm.conf", []byte(fixture.Text(t, "lvm.conf.debian")))
	env.Root, env.Runner = root2, simHost(t, c.Host("h2"))
	checks := Run(ctx, env)
	h2 := byName(checks)
	if h2["fencing"].Status != Fail {
		t.Errorf("h2 fencing: h2[\"fencing\"].Status = %v, want %v", h2["fencing"].Status, Fail)
	}
	if !strings.Contains(h2["fencing"].Detail, "-w 0") {
		t.Error("h2 fencing: strings.Contains(h2[\"fencing\"].Detail, \"-w 0\") = false, want true")
	}
	if h2["lockspace_vol"].Status != Fail {
		t.Errorf("h2 lockspace: %+v", h2["lockspace_vol"])
	}
	if !Failed(checks) {
		t.Error("h2 passed")
	}
}
