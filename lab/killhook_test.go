//go:build lab

package lab

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/dm"
	"github.com/aos-agent/aos-agent/hostcfg"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/recovery"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
	"github.com/aos-agent/aos-agent/virt"
)

// recorder runs commands on a guest and keeps each one's stdout under
// dir/name, so the outputs the production parsers were just checked on can
// become their unit-test data (scripts/lab.sh record).
func recorder(g run.Runner, dir, suffix string) run.Runner {
	unsafe := regexp.MustCompile(`[^A-Za-z0-9._-]+`)
	return run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		res, err := g.Run(ctx, c)
		name := strings.Trim(unsafe.ReplaceAllString(strings.Join(c.Argv, "_"), "_"), "_")
		if len(name) > 80 {
			name = name[:80]
		}
		_ = os.MkdirAll(dir, 0o755)
		_ = os.WriteFile(filepath.Join(dir, name+"."+suffix+".txt"), res.Stdout, 0o644)
		return res, err
	})
}

// daemonUnit runs the packaged agent in TestLabKillHookFences: a transient
// unit, since the package's aos-agent.service waits for a READY that needs
// the broker this test has none of.
const daemonUnit = "aos-agent-lab"

var daemonStart = []string{"systemd-run", "--unit", daemonUnit, guestAgent, "run", "--config", "/etc/aos-agent/aos-agent.conf"}

// TestLabKillHookFences is the day the SAN blips, on a real guest with the
// watchdog armed (wdmd + softdog, sanlock -w 1) and the agent's kill hook as
// lvmlockctl_kill_command: every path is lost while one LV is held
// exclusively and open (a VM) and another shared. The hook must take the
// LVs offline fast enough that lvmlockctl drops the locks and the watchdog
// never resets the host; without it the host is reset (TestLabWatchdogReset).
func TestLabKillHookFences(t *testing.T) {
	ctx := context.Background()
	l := bootLab(t, "kill-hook", Options{Hosts: 1, Watchdog: true})
	g := l.c.Host(1)
	recDir := filepath.Join(l.out, "recorded")

	l.scenario(t, "setup", func(t *testing.T) {
		if err := StartStorage(ctx, g, true); err != nil {
			t.Fatal(err)
		}
		if err := CreateSharedVG(ctx, g, vg); err != nil {
			t.Fatal(err)
		}
		lv := lvm.New(g, lvm.Options{VolumeGroups: []string{vg}, Timeout: 2 * time.Minute})
		for _, name := range []string{"vm-disk", "shared-disk"} {
			if err := lv.Create(ctx, vg, name, 64<<20); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := lv.Activate(ctx, lvm.Exclusive, vg, "vm-disk"); err != nil {
			t.Fatal(err)
		}
		if _, err := lv.Activate(ctx, lvm.Shared, vg, "shared-disk"); err != nil {
			t.Fatal(err)
		}
		held, _ := json.Marshal(map[string]any{"version": 1, "lvs": []state.HeldLV{
			{VG: vg, LV: "vm-disk", Mode: state.Exclusive}, {VG: vg, LV: "shared-disk", Mode: state.Shared}}})
		// No broker in this test: the daemon keeps retrying it, which must
		// not keep it from monitoring and recovering.
		conf := "[DEFAULT]\nhost = lab-h1\nstate_dir = /var/lib/aos-agent\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n" +
			"[lvm]\nvolume_groups = " + vg + "\nmultipath_alias = " + LUNMap + "\n[recovery]\nmode = auto\n[metrics]\nlisten =\n"
		lvmConf := l.must(t, 1, "", "cat", "/etc/lvm/lvm.conf").Stdout
		edited, err := hostcfg.SetLVM(lvmConf, hostcfg.Setting{Section: "global", Key: "lvmlockctl_kill_command", Value: hostcfg.Quote(guestAgent + " kill-hook")})
		if err != nil {
			t.Fatal(err)
		}
		l.must(t, 1, "", "mkdir", "-p", "/var/lib/aos-agent", "/etc/aos-agent")
		for path, content := range map[string]string{"/var/lib/aos-agent/held.json": string(held), "/etc/aos-agent/aos-agent.conf": conf, "/etc/lvm/lvm.conf": string(edited)} {
			if err := WriteFile(ctx, g, path, content); err != nil {
				t.Fatal(err)
			}
		}
		// Two real domains (nested qemu, TCG) doing I/O on the LVs.
		for dom, lv := range map[string]string{"vm1": "vm-disk", "vm2": "shared-disk"} {
			start := time.Now()
			if err := StartDomain(ctx, g, dom, "/dev/"+vg+"/"+lv); err != nil {
				t.Fatal(err)
			}
			l.tm.add("virsh define + start of a nested domain", time.Since(start))
		}
		// The agent daemon runs throughout, as on a real host.
		l.must(t, 1, "", daemonStart...)
	})

	l.scenario(t, "real-outputs-healthy", func(t *testing.T) {
		r := recorder(g, recDir, "healthy")
		m, err := multipath.New(r, time.Minute).Map(ctx, LUNMap)
		if err != nil {
			t.Fatalf("multipath map: err = %v, want nil", err)
		}
		if len(m.ActivePaths()) != 2 {
			t.Fatalf("multipath map: len(m.ActivePaths()) = %v, want 2", len(m.ActivePaths()))
		}
		{
			paths, err := multipath.New(r, time.Minute).Paths(ctx)
			if err != nil {
				t.Fatalf("paths: err = %v, want nil", err)
			}
			if len(paths) < 2 {
				t.Fatalf("paths: len(paths) = %v, want >= 2", len(paths))
			}
		}
		{
			maps, err := multipath.New(r, time.Minute).Maps(ctx)
			if err != nil {
				t.Fatalf("maps: err = %v, want nil", err)
			}
			if len(maps) != 1 {
				t.Fatalf("maps: len(maps) = %v, want 1", len(maps))
			}
		}
		devs, err := dm.New(r, time.Minute).Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		open := map[string]int{}
		for _, d := range devs {
			if d.VG == vg {
				open[d.LV] = d.Open
			}
		}
		if open["vm-disk"] != 1 {
			t.Fatalf("dm open counts: open[\"vm-disk\"] = %v, want 1", open["vm-disk"])
		}
		if open["shared-disk"] != 1 {
			t.Fatalf("dm open counts: open[\"shared-disk\"] = %v, want 1", open["shared-disk"])
		}
		h := vgHealth(t, ctx, r)
		if h == nil {
			t.Fatal("health of a joined VG holding ex+sh: h = nil, want non-nil")
		}
		if h.State() != sanlock.StateJoined {
			t.Fatalf("health of a joined VG holding ex+sh: h.State() = %v, want %v", h.State(), sanlock.StateJoined)
		}
		if len(h.Locks) != 2 {
			t.Fatalf("health of a joined VG holding ex+sh: len(h.Locks) = %v, want 2", len(h.Locks))
		}
		v := virt.New(r, "", time.Minute)
		for _, dom := range []string{"vm1", "vm2"} {
			{
				st, err := v.State(ctx, dom)
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				if st.State != "running" {
					t.Fatalf("st.State = %q, want \"running\"", st.State)
				}
			}
			if _, err := v.Disks(ctx, dom); err != nil {
				t.Fatal(err)
			}
			// The policies the cluster view reports, as libvirt
			// prints them for lab/domain.go's definition.
			pols, err := v.DiskPolicies(ctx, dom)
			if err != nil {
				t.Fatal(err)
			}
			if len(pols) != 1 || pols[0].ErrorPolicy != "stop" || pols[0].ReadErrorPolicy != "stop" {
				t.Errorf("%s disk policies %+v, want one disk with error_policy and rerror_policy stop", dom, pols)
			}
		}
		// What a nested TCG domain in its SeaBIOS boot loop costs the guest.
		l.record(t, 1, "nested-qemu-cost", "ps", "-C", "qemu-system-x86_64", "-o", "pid,rss,pcpu,etimes,comm")
		l.record(t, 1, "loadavg", "cat", "/proc/loadavg")
	})

	var fault time.Time
	l.scenario(t, "all-paths-lost-fenced-no-reset", func(t *testing.T) {
		fault = time.Now()
		if err := FailPaths(ctx, g, true); err != nil {
			t.Fatal(err)
		}
		// The hook runs at lease failure (8 × io_timeout after the last
		// renewal); the watchdog would fire some 40 s later. Wait until the
		// lockspace is gone from sanlock, i.e. lvmlockctl dropped it after
		// the hook's exit 0.
		deadline := fault.Add(3 * time.Minute)
		paused := map[string]bool{}
		for {
			for _, dom := range []string{"vm1", "vm2"} {
				if st, _ := DomainState(ctx, g, dom); !paused[dom] && st == "paused (I/O error)" {
					paused[dom] = true
					l.tm.add("paths lost -> domain paused (I/O error)", time.Since(fault))
				}
			}
			select {
			case <-g.Exited():
				t.Fatalf("the guest was reset %.0fs after the fault: the kill hook did not fence in time", time.Since(fault).Seconds())
			default:
			}
			res, err := g.Run(ctx, run.Cmd{Argv: []string{"sanlock", "client", "status"}, Timeout: 10 * time.Second})
			if err == nil && !strings.Contains(string(res.Stdout), "lvm_"+vg) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lockspace still present 3 min after the fault")
			}
			time.Sleep(time.Second)
		}
		l.tm.add("paths lost -> kill hook fenced, locks dropped", time.Since(fault))
		tables, err := dm.New(recorder(g, recDir, "fenced"), time.Minute).Tables(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables {
			if vgName, lvName, layer, ok := dm.SplitLVMName(tb.Name); ok && vgName == vg && layer == "" && lvName != "lvmlock" && !tb.Errored() {
				t.Errorf("%s not fenced: %+v", tb.Name, tb.Segments)
			}
		}
		res := l.must(t, 1, "", "cat", recovery.JournalPath("/var/lib/aos-agent", vg))
		var j recovery.Journal
		{
			err := json.Unmarshal(res.Stdout, &j)
			if err != nil {
				t.Fatalf("journal: err = %v, want nil", err)
			}
			if j.Phase != recovery.PhaseFenced {
				t.Fatalf("journal: j.Phase = %v, want %v", j.Phase, recovery.PhaseFenced)
			}
			if len(j.LVs) != 2 {
				t.Fatalf("journal: len(j.LVs) = %v, want 2", len(j.LVs))
			}
		}
		// The hook read the exclusive lease's version while sanlock still
		// listed it: recovery compares it with the version it gets back.
		for _, lv := range j.LVs {
			if (lv.LV == "vm-disk") != (lv.LeaseVersion > 0) {
				t.Errorf("journal LV %+v: lv.LV = %v, want != \"vm-disk\") != (lv.LeaseVersion > 0", lv, lv.LV)
			}
			if lv.UUID == "" {
				t.Errorf("journal LV %+v: lv.UUID = %v, want != \"\"", lv, lv.UUID)
			}
		}
		for _, dom := range []string{"vm1", "vm2"} {
			{
				st, err := DomainState(ctx, g, dom)
				if err != nil {
					t.Fatalf("%s after the fence: err = %v, want nil", dom, err)
				}
				if st != "paused (I/O error)" {
					t.Errorf("%s after the fence: st = %q, want \"paused (I/O error)\"", dom, st)
				}
			}
		}
		l.record(t, 1, "journal-kill-hook", "journalctl", "-b", "-o", "short-monotonic", "--no-pager", "-t", "lvmlockctl", "-t", "sanlock", "-t", "aos-agent")
		// The watchdog's deadline passes while the next scenarios run
		// (no-reset-past-the-watchdog-deadline checks it): once sanlock
		// dropped the failed lockspace, the paths coming back change nothing
		// for the watchdog, which only that drop disarms.
	})

	l.scenario(t, "paths-back-automatic-recovery", func(t *testing.T) {
		// The domains stay paused on their open, error-tabled disks.
		if err := RestorePaths(ctx, g); err != nil {
			t.Fatal(err)
		}
		if err := WaitMap(ctx, g, 2); err != nil {
			t.Fatal(err)
		}
		// The daemon sees an active path at its next poll and recovers the
		// VG by itself ([recovery] mode = auto).
		start := time.Now()
		l.waitRecovered(t, start, 5*time.Minute)
		l.tm.add("paths back -> automatic recovery by the daemon done", time.Since(start))
		log := l.agentLog(t)
		if !strings.Contains(log, "automatic recovery done") {
			t.Fatalf("no 'automatic recovery done' in the agent's journal:\n%s", log)
		}
		// Both LVs came back unchanged (vm-disk's lease version moved by
		// this host's own acquire only): both domains run again.
		for _, dom := range []string{"vm1", "vm2"} {
			if !strings.Contains(log, "resumed domain "+dom) {
				t.Errorf("no 'resumed domain %s' in the agent's journal", dom)
			}
			{
				st, err := DomainState(ctx, g, dom)
				if err != nil {
					t.Fatalf("%s after recovery: err = %v, want nil", dom, err)
				}
				if st != "running (unpaused)" {
					t.Errorf("%s after recovery: st = %q, want \"running (unpaused)\"", dom, st)
				}
			}
		}
		time.Sleep(3 * time.Second) // a few SeaBIOS reboots, each reading the disk
		for _, dom := range []string{"vm1", "vm2"} {
			{
				st, err := DomainState(ctx, g, dom)
				if err != nil {
					t.Fatalf("%s a few disk reads after the resume: err = %v, want nil", dom, err)
				}
				if st != "running (unpaused)" {
					t.Errorf("%s a few disk reads after the resume: st = %q, want \"running (unpaused)\"", dom, st)
				}
			}
		}
		// The operator's command finds nothing left to do.
		res, err := g.Run(ctx, run.Cmd{Argv: []string{guestAgent, "recover", vg}, Timeout: 5 * time.Minute})
		if err != nil {
			t.Fatalf("aos-agent recover after the automatic one: err = %v, want nil", err)
		}
		if !strings.Contains(string(res.Stdout), "recovered") {
			t.Fatalf("aos-agent recover after the automatic one: string(res.Stdout) = %q, want it to contain \"recovered\"", string(res.Stdout))
		}
		l.wantMode(t, 1, "vm-disk", "ex")
		l.wantMode(t, 1, "shared-disk", "sh")
		tables, err := dm.New(g, time.Minute).Tables(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables {
			if vgName, _, layer, ok := dm.SplitLVMName(tb.Name); ok && vgName == vg && layer == "" && tb.Errored() {
				t.Errorf("%s still on the error target after recovery", tb.Name)
			}
		}
	})

	l.scenario(t, "lease-lost-again-during-recovery", func(t *testing.T) { l.fenceDuringRecovery(t, ctx, g) })
	l.scenario(t, "no-reset-past-the-watchdog-deadline", func(t *testing.T) {
		// sanlock's watchdog would reset the host some 60 s after the lease
		// failed (24 s after the fault) had the fence not let lvmlockctl
		// drop the locks: well before 150 s.
		for time.Since(fault) < 150*time.Second {
			select {
			case <-g.Exited():
				t.Fatalf("the guest was reset %.0fs after the fault although the locks were dropped", time.Since(fault).Seconds())
			case <-time.After(time.Second):
			}
		}
		select {
		case <-g.Exited():
			t.Fatal("the guest was reset after the fault although the locks were dropped")
		default:
		}
		if _, err := g.Run(ctx, run.Cmd{Argv: []string{"true"}}); err != nil {
			t.Fatalf("guest not answering %.0f s after the fault: %v", time.Since(fault).Seconds(), err)
		}
	})
	l.scenario(t, "lease-lost-holding-nothing-rejoined", func(t *testing.T) { l.rejoinUnheld(t, ctx, g, recDir) })
}

// injectRelockKill is an lvchange that, right after the first -aey (recovery
// re-acquiring an exclusive LV), loses the VG's lease again the way lvm2
// lets one test it: lvmlockctl --kill, which runs the kill hook (a second
// fence) and drops the locks before lvchange returns to recovery. It lives on
// the root file system: Debian mounts /run noexec, and Go's exec then skips
// it in PATH.
const injectRelockKill = `#!/bin/sh
/usr/sbin/lvchange "$@"
rc=$?
case " $* " in
*" -aey "*)
	if [ ! -e /usr/local/lib/aos-inject/fired ]; then
		touch /usr/local/lib/aos-inject/fired
		lvmlockctl --kill ` + vg + ` >&2
	fi ;;
esac
exit $rc
`

// fenceDuringRecovery is issue 19's second finding on the real guest: the
// lease is lost again while a recovery runs, between its re-acquire and its
// refresh. The running recovery must stop before loading a table or
// resuming a VM, and leave the second fence's journal; the next recovery
// settles it.
func (l *labT) fenceDuringRecovery(t *testing.T, ctx context.Context, g run.Runner) {
	journalPath := recovery.JournalPath("/var/lib/aos-agent", vg)
	readJournal := func() recovery.Journal {
		t.Helper()
		var j recovery.Journal
		if err := json.Unmarshal(l.must(t, 1, "", "cat", journalPath).Stdout, &j); err != nil {
			t.Fatal(err)
		}
		return j
	}
	waitPaused := func() {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for _, dom := range []string{"vm1", "vm2"} {
			for {
				st, err := DomainState(ctx, g, dom)
				if err == nil && st == "paused (I/O error)" {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s not paused on its fenced disk: %q %v", dom, st, err)
				}
				time.Sleep(time.Second)
			}
		}
	}
	wantTables := func(errored bool) {
		t.Helper()
		tables, err := dm.New(g, time.Minute).Tables(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables {
			if vgName, lvName, layer, ok := dm.SplitLVMName(tb.Name); ok && vgName == vg && layer == "" && lvName != "lvmlock" && tb.Errored() != errored {
				t.Errorf("%s: error target %v, want %v", tb.Name, tb.Errored(), errored)
			}
		}
	}
	// Recovery by hand only: the daemon would race the injected fault.
	l.must(t, 1, "", "systemctl", "stop", daemonUnit)
	start := time.Now()
	l.must(t, 1, "", "lvmlockctl", "--kill", vg) // runs the kill hook: fence 1
	l.tm.add("lvmlockctl --kill -> hook fenced, locks dropped", time.Since(start))
	{
		j := readJournal()
		if j.Phase != recovery.PhaseFenced {
			t.Fatalf("first fence: phase: j.Phase = %v, want %v", j.Phase, recovery.PhaseFenced)
		}
		if j.Generation != 1 {
			t.Fatalf("first fence: phase: j.Generation = %v, want 1", j.Generation)
		}
	}
	waitPaused()

	l.must(t, 1, "", "mkdir", "-p", "/usr/local/lib/aos-inject")
	if err := WriteFile(ctx, g, "/usr/local/lib/aos-inject/lvchange", injectRelockKill); err != nil {
		t.Fatal(err)
	}
	l.must(t, 1, "", "chmod", "+x", "/usr/local/lib/aos-inject/lvchange")
	start = time.Now()
	res, err := l.cmd(1, "env", "PATH=/usr/local/lib/aos-inject:/usr/sbin:/usr/bin:/sbin:/bin", guestAgent, "recover", vg)
	l.tm.add("recover interrupted by a second fence", time.Since(start))
	out := string(res.Stdout) + string(res.Stderr)
	_ = os.WriteFile(filepath.Join(l.out, "recover-interrupted.txt"), []byte(out), 0o644)
	if _, ferr := l.cmd(1, "test", "-e", "/usr/local/lib/aos-inject/fired"); ferr != nil {
		t.Fatalf("the second fault was never injected:\n%s", out)
	}
	if err == nil {
		t.Fatal("recovery across a second fence: err = nil, want non-nil")
	}
	if !strings.Contains(out, "fenced again during recovery") {
		t.Fatalf("recovery across a second fence: out = %q, want it to contain \"fenced again during recovery\"", out)
	}
	// Nothing of the first recovery survived the second fence: both LVs on
	// the error target, both VMs paused, no lock, the new journal kept.
	j := readJournal()
	if j.Phase != recovery.PhaseFenced {
		t.Fatalf("second fence's journal: phase: j.Phase = %v, want %v", j.Phase, recovery.PhaseFenced)
	}
	if j.Generation != 2 {
		t.Fatalf("second fence's journal: phase: j.Generation = %v, want 2", j.Generation)
	}
	if len(j.LVs) != 2 {
		t.Fatalf("second fence's journal: phase: len(j.LVs) = %v, want 2", len(j.LVs))
	}
	for _, lv := range j.LVs {
		if lv.Mode == "" {
			t.Errorf("the second fence lost track of: lv.Mode = %v, want != \"\"", lv.Mode)
		}
		if lv.Outcome != "" {
			t.Errorf("the second fence lost track of: lv.Outcome = %q, want \"\"", lv.Outcome)
		}
		if !lv.Fenced {
			t.Error("the second fence lost track of: lv.Fenced = false, want true")
		}
	}
	wantTables(true)
	waitPaused()
	l.wantMode(t, 1, "vm-disk", "")
	l.wantMode(t, 1, "shared-disk", "")

	start = time.Now()
	res, err = l.cmd(1, guestAgent, "recover", vg)
	if err != nil {
		t.Fatalf("recover after the second fence: err = %v, want nil", err)
	}
	if !strings.Contains(string(res.Stdout), "recovered") {
		t.Fatalf("recover after the second fence: string(res.Stdout) = %q, want it to contain \"recovered\"", string(res.Stdout))
	}
	l.tm.add("recover after the second fence", time.Since(start))
	wantTables(false)
	for _, dom := range []string{"vm1", "vm2"} {
		{
			st, err := DomainState(ctx, g, dom)
			if err != nil {
				t.Fatalf("%s after the final recovery: err = %v, want nil", dom, err)
			}
			if st != "running (unpaused)" {
				t.Errorf("%s after the final recovery: st = %q, want \"running (unpaused)\"", dom, st)
			}
		}
	}
	l.wantMode(t, 1, "vm-disk", "ex")
	l.wantMode(t, 1, "shared-disk", "sh")
}

// vgHealth is the VG's lockspace as the agent's monitor reads it: sanlock's
// status and lvmlockd's info and dump, through the production parsers.
func vgHealth(t *testing.T, ctx context.Context, r run.Runner) *sanlock.Lockspace {
	t.Helper()
	st, err := sanlock.New(r, time.Minute).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := sanlock.NewLockCtl(r, time.Minute).Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := sanlock.NewLockCtl(r, time.Minute).Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return sanlock.Health(st, info, dump)[vg]
}

// waitRecovered waits until the daemon's automatic recovery has removed the
// VG's journal, failing limit after since.
func (l *labT) waitRecovered(t *testing.T, since time.Time, limit time.Duration) {
	t.Helper()
	journal := recovery.JournalPath("/var/lib/aos-agent", vg)
	for {
		if _, err := l.cmd(1, "test", "-e", journal); err != nil {
			return
		}
		if time.Since(since) > limit {
			t.Fatalf("the daemon did not recover the VG within %v of the paths returning:\n%s", limit, l.agentLog(t))
		}
		time.Sleep(time.Second)
	}
}

// agentLog returns the guest daemon's journal and keeps it in the output dir.
func (l *labT) agentLog(t *testing.T) string {
	t.Helper()
	out := l.must(t, 1, "", "journalctl", "-b", "-u", daemonUnit, "--no-pager", "-o", "cat").Stdout
	_ = os.WriteFile(filepath.Join(l.out, "aos-agent.journal"), out, 0o644)
	return string(out)
}

// rejoinUnheld is the lease lost while the host holds no LV lock, with the
// daemon running ([recovery] mode = auto). sanlock runs no killpath for a
// lockspace nobody holds a resource in: it drops its lockspace, lvmlockd
// keeps its own, no fence and no reset. The agent's parsers must read that
// as "dropped" on the real outputs, and once the paths are back the daemon
// must drop and start the lockspace by itself, so the host can lock again.
func (l *labT) rejoinUnheld(t *testing.T, ctx context.Context, g *Guest, recDir string) {
	journal := recovery.JournalPath("/var/lib/aos-agent", vg)
	for _, dom := range []string{"vm1", "vm2"} {
		l.must(t, 1, "", "virsh", "destroy", dom)
	}
	l.must(t, 1, "", "lvchange", "-an", vg+"/vm-disk", vg+"/shared-disk")
	if err := WriteFile(ctx, g, "/var/lib/aos-agent/held.json", `{"version": 1, "lvs": []}`); err != nil {
		t.Fatal(err)
	}
	_, _ = l.cmd(1, "systemctl", "reset-failed", daemonUnit)
	l.must(t, 1, "", daemonStart...)

	fault := time.Now()
	if err := FailPaths(ctx, g, true); err != nil {
		t.Fatal(err)
	}
	pathsBack := false
	defer func() {
		if !pathsBack {
			_ = RestorePaths(context.Background(), g)
		}
	}()
	lockspace := func() *sanlock.SpaceStatus {
		t.Helper()
		select {
		case <-g.Exited():
			t.Fatalf("the guest was reset %.0fs after the fault, holding no LV lock", time.Since(fault).Seconds())
		default:
		}
		res, err := g.Run(ctx, run.Cmd{Argv: []string{"sanlock", "client", "status", "-D"}, Timeout: 10 * time.Second})
		if err != nil {
			return &sanlock.SpaceStatus{Pending: "unreadable"}
		}
		st, err := sanlock.ParseStatus(res.Stdout)
		if err != nil {
			t.Fatal(err)
		}
		return st.Lockspace(sanlock.LockspacePrefix + vg)
	}
	for deadline := fault.Add(3 * time.Minute); lockspace() != nil; time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Fatalf("sanlock still lists the lockspace 3 min after the fault:\n%s", l.agentLog(t))
		}
	}
	l.tm.add("paths lost, nothing held -> sanlock dropped the lockspace", time.Since(fault))
	if _, err := l.cmd(1, "test", "-e", journal); err == nil {
		t.Errorf("a fence journal exists: the kill hook ran although no LV lock was held")
	}
	if h := vgHealth(t, ctx, recorder(g, recDir, "dropped")); h == nil || h.State() != sanlock.StateDropped {
		t.Fatalf("health of the lockspace sanlock dropped: %+v, want state %s", h, sanlock.StateDropped)
	}

	if err := RestorePaths(ctx, g); err != nil {
		t.Fatal(err)
	}
	pathsBack = true
	if err := WaitMap(ctx, g, 2); err != nil {
		t.Fatal(err)
	}
	// Joined in sanlock, and the rejoin's end logged (it polls sanlock too).
	start := time.Now()
	for {
		if ls := lockspace(); ls != nil && ls.Pending == "" && strings.Contains(l.agentLog(t), "lockspace rejoined") {
			break
		}
		if time.Since(start) > 3*time.Minute {
			t.Fatalf("the daemon did not rejoin the lockspace within 3 min of the paths returning:\n%s", l.agentLog(t))
		}
		time.Sleep(time.Second)
	}
	l.tm.add("paths back -> the daemon rejoined the dropped lockspace", time.Since(start))
	if _, err := l.cmd(1, "test", "-e", journal); err == nil {
		t.Errorf("a fence journal exists after the rejoin")
	}
	l.must(t, 1, "", "lvchange", "-aey", vg+"/vm-disk")
	l.wantMode(t, 1, "vm-disk", "ex")
	l.must(t, 1, "", "lvchange", "-an", vg+"/vm-disk")
}
