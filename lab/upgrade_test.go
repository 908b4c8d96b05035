//go:build lab

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/rpc"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/sanlock"
	"go.uber.org/zap"
)

// TestLabUpgrade is issue 17's upgrade on a real host: the agent's package
// at version A runs aos-agent.service (notify, READY) holding an LV
// exclusively while clients on this host keep calling it through the
// broker; `apt-get install` of version B restarts aos-agent.service alone
// (its postinst asks restart-check first). No call may fail or time out,
// the LV's sanlock lease must stay the same (same version, same holder),
// aos-agent-lockstart.service, sanlock and lvmlockd must not restart, and
// the agent must be back, READY and B.
func TestLabUpgrade(t *testing.T) {
	ctx := context.Background()
	brokerURL, port := startBrokerPort(t)
	// Version A sorts just below the one every lab test installs (B).
	res, err := buildHost().Run(ctx, run.Cmd{Argv: []string{"sh", "../packaging/version.sh"}})
	if err != nil {
		t.Fatal(err)
	}
	versionB := strings.TrimSpace(string(res.Stdout))
	debA, err := buildPackage(ctx, t.TempDir(), versionB+"~prev")
	if err != nil {
		t.Fatal(err)
	}
	l := bootLab(t, "upgrade", Options{Hosts: 1, BrokerPort: port, Package: debA})
	g := l.c.Host(1)
	client, err := rpc.NewClient(rpc.Config{URL: brokerURL, Topic: "aos-agent", Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	const lv = "volume-up"
	call := func(method string, args map[string]any) (map[string]any, error) {
		raw, err := client.Call(ctx, "lab-h1", method, args, 3*time.Minute)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return m, err
	}
	installed := func(t *testing.T) string {
		return strings.TrimSpace(string(l.must(t, 1, "", "dpkg-query", "-W", "-f=${Version}", "aos-agent").Stdout))
	}
	// lease is the LV's exclusive sanlock lease: its version changes with
	// every acquisition, its pid is lvmlockd's.
	lease := func(t *testing.T) sanlock.Resource {
		t.Helper()
		uuid := strings.ReplaceAll(strings.TrimSpace(string(l.must(t, 1, "", "lvs", "--noheadings", "-o", "lv_uuid", vg+"/"+lv).Stdout)), "-", "")
		st, err := sanlock.New(g, time.Minute).Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range st.Resources {
			if r.Lockspace == sanlock.LockspacePrefix+vg && !r.Shared && strings.ReplaceAll(r.Name, "-", "") == uuid {
				return r
			}
		}
		t.Fatalf("no exclusive sanlock lease for %s: %+v", lv, st.Resources)
		return sanlock.Resource{}
	}

	// What the upgrade must not touch, as it was before.
	type holders struct{ lockstart, sanlock, lvmlockd string }
	lockHolders := func(t *testing.T) holders {
		return holders{l.unitProp(t, "aos-agent-lockstart.service", "InvocationID"),
			l.unitProp(t, "sanlock.service", "MainPID"), l.unitProp(t, "lvmlockd.service", "MainPID")}
	}
	var before holders
	var leaseBefore sanlock.Resource
	l.scenario(t, "version-A-serving", func(t *testing.T) {
		if err := StartStorage(ctx, g, false); err != nil {
			t.Fatal(err)
		}
		if err := CreateSharedVG(ctx, g, vg); err != nil {
			t.Fatal(err)
		}
		l.must(t, 1, "", "mkdir", "-p", "/etc/aos-agent", "/etc/systemd/network")
		for path, content := range map[string]string{
			"/etc/aos-agent/aos-agent.conf":       agentConf(brokerURL, "lab-h1", "/var/lib/aos-agent"),
			"/etc/systemd/network/10-lab.network": guestNetwork,
		} {
			if err := WriteFile(ctx, g, path, content); err != nil {
				t.Fatal(err)
			}
		}
		l.must(t, 1, "install", guestAgent, "install", "--host-id", "1")
		l.must(t, 1, "", "systemctl", "start", "systemd-networkd.service")
		// Returns once the agent sent READY; lockstart runs first.
		l.must(t, 1, "start aos-agent.service to READY", "systemctl", "start", "aos-agent.service")
		if v := installed(t); v != versionB+"~prev" {
			t.Fatalf("installed %s, want A", v)
		}
		for _, step := range []struct {
			method string
			args   map[string]any
		}{{"create_volume", map[string]any{"volume_name": lv, "size": 1}}, {"activate_volume", map[string]any{"volume_name": lv, "mode": "exclusive"}}} {
			if _, err := call(step.method, step.args); err != nil {
				t.Fatalf("%s: %v", step.method, err)
			}
		}
		l.wantMode(t, 1, lv, "ex")
		before, leaseBefore = lockHolders(t), lease(t)
	})

	l.scenario(t, "upgrade-A-to-B-under-calls", func(t *testing.T) {
		agentPID := l.unitProp(t, "aos-agent.service", "MainPID")
		type result struct {
			start, end time.Time
			method     string
			err        error
		}
		var (
			mu      sync.Mutex
			results []result
			wg      sync.WaitGroup
		)
		stop := make(chan struct{})
		// Four callers, so that calls are both in flight and queued when
		// the old agent stops: every other call is the LV's exclusive
		// activation again (idempotent, through lvmlockd).
		for c := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := c; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					method, args := "get_status", map[string]any{}
					if i%2 == 1 {
						method, args = "activate_volume", map[string]any{"volume_name": lv, "mode": "exclusive"}
					}
					r := result{start: time.Now(), method: method}
					var m map[string]any
					m, r.err = call(method, args)
					if r.err == nil && method == "activate_volume" && m["mode"] != "exclusive" {
						r.err = fmt.Errorf("reply %v", m)
					}
					r.end = time.Now()
					mu.Lock()
					results = append(results, r)
					mu.Unlock()
				}
			}()
		}
		waitCalls := func(after time.Time, n int) {
			for {
				mu.Lock()
				done := 0
				for _, r := range results {
					if r.start.After(after) {
						done++
					}
				}
				mu.Unlock()
				if done >= n {
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		waitCalls(time.Time{}, 8)

		upgradeAt := time.Now()
		res, err := l.c.InstallPackage(ctx, 1, agentDeb)
		aptOut := string(res.Stdout) + string(res.Stderr)
		_ = os.WriteFile(filepath.Join(l.out, "apt-upgrade.txt"), []byte(aptOut), 0o644)
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("apt-get install of B: %v\n%s", err, aptOut)
		}
		l.tm.add("apt-get install B over A (postinst restart included)", time.Since(upgradeAt))
		// The postinst's try-restart returns at READY: B is serving now.
		backAt := time.Now()
		waitCalls(backAt, 8)
		close(stop)
		wg.Wait()

		if !strings.Contains(aptOut, "aos-agent: restarting aos-agent.service (restart-check: safe") {
			t.Errorf("the postinst did not restart the agent on restart-check's word:\n%s", aptOut)
		}
		if v := installed(t); v != versionB {
			t.Errorf("installed %s after the upgrade, want %s", v, versionB)
		}
		if v := strings.TrimSpace(string(l.must(t, 1, "", guestAgent, "version").Stdout)); v != "aos-agent "+versionB {
			t.Errorf("aos-agent version: %s", v)
		}
		{
			pid := l.unitProp(t, "aos-agent.service", "MainPID")
			if pid == agentPID {
				t.Errorf("aos-agent.service not restarted and active: pid = %v, want != agentPID", pid)
			}
			if l.unitState(t, "aos-agent.service") != "active" {
				t.Errorf("aos-agent.service not restarted and active: l.unitState(t, \"aos-agent.service\") = %q, want \"active\"", l.unitState(t, "aos-agent.service"))
			}
		}
		if after := lockHolders(t); after != before {
			t.Errorf("a lock holder restarted: before %+v, after %+v", before, after)
		}
		l.wantMode(t, 1, lv, "ex")
		{
			r := lease(t)
			if r.Version != leaseBefore.Version {
				t.Errorf("the LV's lease changed: r.Version = %v, want %v", r.Version, leaseBefore.Version)
			}
			if r.PID != leaseBefore.PID {
				t.Errorf("the LV's lease changed: r.PID = %v, want %v", r.PID, leaseBefore.PID)
			}
		}
		l.must(t, 1, "", "dmsetup", "info", vg+"-volume--up")

		// Calls: none lost, and how long the longest waited.
		var failed []string
		var longest time.Duration
		for _, r := range results {
			if r.err != nil {
				failed = append(failed, fmt.Sprintf("%s at +%.1fs: %v", r.method, r.start.Sub(upgradeAt).Seconds(), r.err))
			}
			longest = max(longest, r.end.Sub(r.start))
		}
		if len(failed) > 0 {
			t.Errorf("%d of %d calls failed or were lost:\n%s", len(failed), len(results), strings.Join(failed, "\n"))
		}
		// systemd's view of the gap: the old agent left active (SIGTERM,
		// its consumers cancelled) and the new one sent READY.
		gap := secs(l.activeSince(t, "aos-agent.service") - l.monotonicProp(t, "aos-agent.service", "ActiveExitTimestampMonotonic"))
		l.tm.add("old agent stopping -> new agent READY (no consumer)", gap)
		l.tm.add("longest call during the upgrade (sent -> reply)", longest)
		t.Logf("%d calls by 4 clients, %d failed or lost; no consumer for %.2fs; longest call %.2fs; apt-get install %.1fs",
			len(results), len(failed), gap.Seconds(), longest.Seconds(), backAt.Sub(upgradeAt).Seconds())
		slices.SortFunc(results, func(a, b result) int { return a.start.Compare(b.start) })
		var b strings.Builder
		for _, r := range results {
			fmt.Fprintf(&b, "%+8.2fs %6.2fs %-16s %v\n", r.start.Sub(upgradeAt).Seconds(), r.end.Sub(r.start).Seconds(), r.method, r.err)
		}
		_ = os.WriteFile(filepath.Join(l.out, "calls.txt"), []byte(b.String()), 0o644)
	})
}

// monotonicProp is a unit's *TimestampMonotonic property in seconds.
func (l *labT) monotonicProp(t *testing.T, unit, prop string) float64 {
	t.Helper()
	var us int64
	{
		_, err := fmt.Sscan(l.unitProp(t, unit, prop), &us)
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if us == 0 {
			t.Fatalf("us = %v, want != 0", us)
		}
	}
	return float64(us) / 1e6
}
