//go:build lab && labbench

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/dm"
	"github.com/aos-agent/aos-agent/hostcfg"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/state"
)

// TestLabScale is one compute host's worth of volumes on real lvm2 (issue
// 15): up to 200 LVs active exclusively on one guest with the watchdog armed
// and the agent's kill hook installed, two of them under nested domains and
// the rest held open by a plain reader. For each count (LAB_SCALE_LVS,
// default 20,100,200) every path is cut: the kill hook must put every LV on
// the error target well inside sanlock's grace (kill hook start → done, from
// its own log lines), and with the paths back the daemon must re-lock,
// refresh and resume everything (paths back → journal gone). Also the fixed
// cost of one `lvs` with none and all LVs active, with and without a devices
// file limited to the LUN. Not in CI (tens of minutes under TCG): make
// lab-scale.
func TestLabScale(t *testing.T) {
	ctx := context.Background()
	counts := []int{20, 100, 200}
	if v := os.Getenv("LAB_SCALE_LVS"); v != "" {
		counts = nil
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 3 {
				t.Fatalf("LAB_SCALE_LVS=%q: want counts ≥ 3, comma-separated", v)
			}
			counts = append(counts, n)
		}
	}
	total := slices.Max(counts)
	l := bootLab(t, "scale", Options{Hosts: 1, Watchdog: true, LUNSize: int64(total/64+2) << 30})
	g := l.c.Host(1)
	name := func(i int) string { return fmt.Sprintf("scale-%03d", i) }
	names := func(from, to int) []string {
		var out []string
		for i := from; i <= to; i++ {
			out = append(out, name(i))
		}
		return out
	}
	lv := lvm.New(g, lvm.Options{VolumeGroups: []string{vg}, Timeout: 10 * time.Minute})
	lvsCost := func(label string) {
		for _, devicesFile := range []bool{false, true} {
			argv := []string{"lvs", "--noheadings", "-o", "lv_name,lv_active", vg}
			op := "lvs, " + label
			if devicesFile {
				argv = append(argv[:1], append([]string{"--devicesfile", "aos-lun.devices"}, argv[1:]...)...)
				op += ", devices file of the LUN only"
			}
			for range 5 {
				l.must(t, 1, op, argv...)
			}
		}
	}

	l.scenario(t, "setup", func(t *testing.T) {
		if err := StartStorage(ctx, g, true); err != nil {
			t.Fatal(err)
		}
		if err := CreateSharedVG(ctx, g, vg); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for _, n := range names(1, total) {
			if err := lv.Create(ctx, vg, n, 4<<20); err != nil {
				t.Fatal(err)
			}
		}
		l.tm.add(fmt.Sprintf("lvcreate %d LVs, one command each", total), time.Since(start))
		l.must(t, 1, "", "lvm", "lvmdevices", "--devicesfile", "aos-lun.devices", "--adddev", "/dev/mapper/"+LUNMap)
		lvsCost("no LV active")
		lvmConf := l.must(t, 1, "", "cat", "/etc/lvm/lvm.conf").Stdout
		edited, err := hostcfg.SetLVM(lvmConf, hostcfg.Setting{Section: "global", Key: "lvmlockctl_kill_command", Value: hostcfg.Quote(guestAgent + " kill-hook")})
		if err != nil {
			t.Fatal(err)
		}
		conf := "[DEFAULT]\nhost = lab-h1\nstate_dir = /var/lib/aos-agent\ntransport_url = rabbit://guest:guest@127.0.0.1:5672/\n" +
			"[lvm]\nvolume_groups = " + vg + "\nmultipath_alias = " + LUNMap + "\n[recovery]\nmode = auto\n[metrics]\nlisten =\n"
		l.must(t, 1, "", "mkdir", "-p", "/var/lib/aos-agent", "/etc/aos-agent")
		for path, content := range map[string]string{"/etc/aos-agent/aos-agent.conf": conf, "/etc/lvm/lvm.conf": string(edited)} {
			if err := WriteFile(ctx, g, path, content); err != nil {
				t.Fatal(err)
			}
		}
	})

	active := 0
	for _, n := range counts {
		l.scenario(t, fmt.Sprintf("%d-lvs-active", n), func(t *testing.T) {
			// The agent is stopped while LVs are added behind its back, then
			// started on a held.json that records them all, as after a boot.
			_, _ = l.cmd(1, "systemctl", "stop", daemonUnit)
			_, _ = l.cmd(1, "systemctl", "reset-failed", daemonUnit)
			if n > active {
				start := time.Now()
				if _, err := lv.Activate(ctx, lvm.Exclusive, vg, names(active+1, n)...); err != nil {
					t.Fatal(err)
				}
				l.tm.add(fmt.Sprintf("lvchange -aey of %d LVs, one command", n-active), time.Since(start))
			}
			if active == 0 {
				for dom, i := range map[string]int{"vm1": 1, "vm2": 2} {
					if err := StartDomain(ctx, g, dom, "/dev/"+vg+"/"+name(i)); err != nil {
						t.Fatal(err)
					}
				}
			}
			// One plain reader holds the others open (dm open count 1 each).
			unit := fmt.Sprintf("aos-readers-%d", n)
			argv := []string{"systemd-run", "--unit", unit, "bash", "-c", `for d in "$@"; do exec {fd}<"$d"; done; exec sleep infinity`, "readers"}
			for _, lvName := range names(max(active+1, 3), n) {
				argv = append(argv, "/dev/"+vg+"/"+lvName)
			}
			l.must(t, 1, "", argv...)
			var held []state.HeldLV
			for _, lvName := range names(1, n) {
				held = append(held, state.HeldLV{VG: vg, LV: lvName, Mode: state.Exclusive})
			}
			b, _ := json.Marshal(map[string]any{"version": 1, "lvs": held})
			if err := WriteFile(ctx, g, "/var/lib/aos-agent/held.json", string(b)); err != nil {
				t.Fatal(err)
			}
			active = n
			l.must(t, 1, "", "systemd-run", "--unit", daemonUnit, guestAgent, "run", "--config", "/etc/aos-agent/aos-agent.conf")
			lvsCost(fmt.Sprintf("%d LVs active", n))
		})
		l.scenario(t, fmt.Sprintf("%d-lvs-fenced", n), func(t *testing.T) { l.scaleFence(t, ctx, g, n) })
		l.scenario(t, fmt.Sprintf("%d-lvs-recovered", n), func(t *testing.T) { l.scaleRecover(t, ctx, g, n) })
	}
}

// hookLine matches lvmlockctl's lines around the kill command in the
// journal (journalctl -o short-monotonic: "[  123.456789] host
// lvmlockctl[pid]: text"): it logs the lost lease just before running the
// command and the command's outcome when it exits. The hook's own stderr
// does not reach the journal.
var hookLine = regexp.MustCompile(`^\[\s*([0-9.]+)\] .*lvmlockctl\[[0-9]+\]: (lvmlockd lost access to locks in VG ` + vg + `\.|(\S+) VG ` + vg + ` kill command.*)$`)

// scaleFence cuts every path and waits for lvmlockctl to drop the lockspace;
// it reports the kill hook's own duration and the time from the fault.
func (l *labT) scaleFence(t *testing.T, ctx context.Context, g run.Runner, n int) {
	fault := time.Now()
	if err := FailPaths(ctx, g, true); err != nil {
		t.Fatal(err)
	}
	deadline := fault.Add(4 * time.Minute)
	for {
		if _, err := g.Run(ctx, run.Cmd{Argv: []string{"true"}, Timeout: 10 * time.Second}); err != nil {
			t.Fatalf("the guest stopped answering %.0fs after the fault (reset by the watchdog?): %v", time.Since(fault).Seconds(), err)
		}
		res, err := g.Run(ctx, run.Cmd{Argv: []string{"sanlock", "client", "status"}, Timeout: 10 * time.Second})
		if err == nil && !strings.Contains(string(res.Stdout), "lvm_"+vg) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lockspace still present 4 min after the fault")
		}
		time.Sleep(time.Second)
	}
	l.tm.add(fmt.Sprintf("%d LVs: paths lost -> fenced, locks dropped", n), time.Since(fault))
	journal := string(l.must(t, 1, "", "journalctl", "-b", "-o", "short-monotonic", "--no-pager", "--since", fault.Add(-time.Second).UTC().Format("2006-01-02 15:04:05 UTC")).Stdout)
	var begin, end float64
	for _, line := range strings.Split(journal, "\n") {
		m := hookLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ts, _ := strconv.ParseFloat(m[1], 64)
		if m[3] == "" {
			begin = ts
		} else {
			end = ts
			if m[3] != "Successful" {
				t.Errorf("the kill hook failed with %d LVs: %s", n, m[2])
			}
		}
	}
	if begin == 0 || end < begin {
		t.Fatalf("no kill hook start and end in the journal since the fault:\n%s", journal)
	}
	l.tm.add(fmt.Sprintf("%d LVs: kill command start -> exit (every LV on the error target)", n), time.Duration((end-begin)*float64(time.Second)))
	tables, err := dm.New(g, time.Minute).Tables(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fenced := 0
	for _, tb := range tables {
		if vgName, _, ok := dm.UserLV(tb.Name); ok && vgName == vg {
			if !tb.Errored() {
				t.Errorf("%s not fenced: %+v", tb.Name, tb.Segments)
			}
			fenced++
		}
	}
	if fenced != n {
		t.Errorf("%d LVs on the error target, want %d", fenced, n)
	}
}

// scaleRecover brings the paths back and waits for the daemon's automatic
// recovery to re-lock, refresh and resume everything.
func (l *labT) scaleRecover(t *testing.T, ctx context.Context, g run.Runner, n int) {
	if err := RestorePaths(ctx, g); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if err := WaitMap(ctx, g, 2); err != nil {
		t.Fatal(err)
	}
	l.waitRecovered(t, back, 10*time.Minute)
	l.tm.add(fmt.Sprintf("%d LVs: paths back -> all re-locked, refreshed, VMs resumed", n), time.Since(back))
	info := string(l.must(t, 1, "", "lvmlockctl", "--info").Stdout)
	if got := strings.Count(info, " LV ex "); got != n {
		t.Errorf("%d LVs locked ex after recovery, want %d", got, n)
	}
	for _, dom := range []string{"vm1", "vm2"} {
		if st, err := DomainState(ctx, g, dom); err != nil || st != "running (unpaused)" {
			t.Errorf("%s after recovery: %q %v, want running (unpaused)", dom, st, err)
		}
	}
}
