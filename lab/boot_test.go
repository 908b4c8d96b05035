//go:build lab

package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/rpc"
	"go.uber.org/zap"
)

// TestLabBoot is issue 7 on a real host: the agent's package installed,
// the host configured by `aos-agent install` (host settings only: the units
// are the package's), a stand-in nova-compute ordered by the shipped
// drop-in, and a
// reboot with the SAN LUN plugged in only after the host booted. Lockstart
// must wait for the map (saying so in the journal), join, re-activate the LV
// this host held in its mode, and only then may the agent send READY and
// nova-compute start. Then the agent is killed: systemd restarts it and
// nothing it held moves. Last sanlock hangs past the agent's WatchdogSec
// (sanlock-hung): reported, not restarted. The guest reaches a broker on
// this host's loopback and nothing else.
func TestLabBoot(t *testing.T) {
	ctx := context.Background()
	brokerURL, port := startBrokerPort(t)
	// sanlock's default io_timeout, not the lab's 3 s: sanlock-hung stops
	// sanlock longer than the agent's WatchdogSec (30 s), which must stay
	// inside the lease's renewal window (8 × io_timeout).
	l := bootLab(t, "boot", Options{Hosts: 1, BrokerPort: port, IOTimeout: 10})
	client, err := rpc.NewClient(rpc.Config{URL: brokerURL, Topic: "aos-agent", Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	call := func(t *testing.T, method string, args map[string]any) map[string]any {
		t.Helper()
		raw, err := client.Call(ctx, "lab-h1", method, args, 2*time.Minute)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return m
	}

	l.scenario(t, "install-and-serve", func(t *testing.T) {
		if err := StartStorage(ctx, l.c.Host(1), false); err != nil {
			t.Fatal(err)
		}
		if err := CreateSharedVG(ctx, l.c.Host(1), vg); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{
			"/etc/aos-agent/aos-agent.conf": strings.Replace(agentConf(brokerURL, "lab-h1", "/var/lib/aos-agent"),
				"[metrics]\nlisten =\n", "[metrics]\nlisten = "+guestMetrics+"\n", 1),
			"/etc/systemd/network/10-lab.network": guestNetwork,
			"/etc/systemd/system/nova-compute.service": "[Unit]\nDescription=stand-in for nova-compute (lab)\n" +
				"[Service]\nExecStart=/usr/bin/tail -f /dev/null\n[Install]\nWantedBy=multi-user.target\n",
		}
		l.must(t, 1, "", "mkdir", "-p", "/etc/aos-agent", "/etc/systemd/network")
		for path, content := range files {
			if err := WriteFile(ctx, l.c.Host(1), path, content); err != nil {
				t.Fatal(err)
			}
		}
		res := l.must(t, 1, "install", guestAgent, "install", "--host-id", "1")
		_ = os.WriteFile(filepath.Join(l.out, "install.diff"), res.Stdout, 0o644)
		if !strings.Contains(string(res.Stderr), "writing the host settings only") {
			t.Errorf("install did not see the package's units:\n%s", res.Stderr)
		}
		if left, err := l.cmd(1, "sh", "-c", "ls /usr/local/sbin/aos-agent /etc/systemd/system/aos-agent*.service /etc/systemd/system/*.d/aos-agent.conf 2>/dev/null"); len(left.Stdout) > 0 {
			t.Errorf("install wrote a second copy next to the package's: %s %v", left.Stdout, err)
		}
		// The storage daemons and the network start at boot like on a host;
		// the package enabled the agent's units.
		l.must(t, 1, "", "systemctl", "enable", "multipathd.service", "sanlock.service", "lvmlockd.service",
			"systemd-networkd.service", "nova-compute.service")
		l.must(t, 1, "", "systemctl", "start", "systemd-networkd.service")
		l.must(t, 1, "", "systemctl", "start", "nova-compute.service") // waits for the agent's READY
		call(t, "create_volume", map[string]any{"volume_name": "volume-boot", "size": 1})
		if m := call(t, "activate_volume", map[string]any{"volume_name": "volume-boot", "mode": "exclusive"}); m["mode"] != "exclusive" {
			t.Fatalf("activate: %v", m)
		}
		l.wantMode(t, 1, "volume-boot", "ex")
	})

	var lunAt, bootAt time.Time
	l.scenario(t, "reboot-lun-late", func(t *testing.T) {
		// A plain poweroff: the lock-start unit's ExecStop (aos-agent
		// lockstop) releases the idle LV and leaves the lockspace after
		// nova-compute and the agent stopped, so sanlock and lvmlockd can
		// stop; without it the shutdown waited minutes for them. held.json
		// still names the LV.
		start := time.Now()
		if err := l.c.Reboot(ctx, 1, true); err != nil {
			t.Fatal(err)
		}
		bootAt = time.Now()
		l.tm.add("poweroff + boot to the guest daemon", bootAt.Sub(start))
		if prev, err := l.cmd(1, "journalctl", "-b", "-1", "-u", "aos-agent-lockstart", "--no-pager", "-o", "cat"); err == nil {
			if !strings.Contains(string(prev.Stdout), "VG "+vg+": deactivated 1 LVs, lockspace stopped") {
				t.Errorf("the shutdown's lockstop did not release the LV and the lockspace:\n%s", prev.Stdout)
			}
		} else {
			t.Logf("no journal of the previous boot (volatile journal): %v", err)
		}
		// The host is up without its LUN: the agent must not be READY, nor
		// nova-compute started.
		time.Sleep(25 * time.Second)
		for _, unit := range []string{"aos-agent.service", "nova-compute.service"} {
			if st := l.unitState(t, unit); st == "active" {
				t.Fatalf("%s active before the LUN exists", unit)
			}
		}
		lunAt = time.Now()
		if err := l.c.Host(1).AttachLUN(ctx); err != nil {
			t.Fatal(err)
		}
		for l.unitState(t, "nova-compute.service") != "active" {
			if time.Since(lunAt) > 5*time.Minute {
				t.Fatalf("nova-compute not active 5 min after the LUN appeared:\n%s", l.journal(t, "aos-agent-lockstart.service", "aos-agent.service"))
			}
			time.Sleep(time.Second)
		}
		l.tm.add("LUN attached -> nova-compute active", time.Since(lunAt))

		lockstart := l.journal(t, "aos-agent-lockstart.service")
		agentLog := l.journal(t, "aos-agent.service")
		_ = os.WriteFile(filepath.Join(l.out, "boot.journal"), []byte(lockstart+agentLog), 0o644)
		if !strings.Contains(lockstart, "waiting for: multipath map "+LUNMap) {
			t.Errorf("lockstart did not say it waits for the map:\n%s", lockstart)
		}
		joined := monotonicOf(t, lockstart, "lockspaces joined: "+vg)
		reactivated := monotonicOf(t, lockstart, "activated "+vg+"/volume-boot (ex)")
		lunSeen := monotonicOf(t, l.journal(t, "-k"), "Attached SCSI disk")
		ready := l.activeSince(t, "aos-agent.service") // Type=notify: active = READY=1
		nova := l.activeSince(t, "nova-compute.service")
		if !(lunSeen < joined && joined < reactivated && reactivated < ready && ready <= nova) {
			t.Fatalf("boot order (guest monotonic s): LUN %.3f, joined %.3f, re-activated %.3f, agent READY %.3f, nova-compute %.3f",
				lunSeen, joined, reactivated, ready, nova)
		}
		l.tm.add("lockspace joined -> nova-compute started (goal <= 1 s)", secs(nova-joined))
		l.tm.add("  joined -> held LV re-activated", secs(reactivated-joined))
		l.tm.add("  re-activated -> agent READY", secs(ready-reactivated))
		l.tm.add("  agent READY -> nova-compute started", secs(nova-ready))
		l.wantMode(t, 1, "volume-boot", "ex")
		units := l.must(t, 1, "", "sh", "-c", "cat /lib/systemd/system/aos-agent*.service /lib/systemd/system/*.d/aos-agent.conf /etc/systemd/system/nova-compute.service").Stdout
		if regexp.MustCompile(`(?m)^Exec.*\bsleep\b`).Match(units) {
			t.Errorf("a sleep on the boot path:\n%s", units)
		}
		doctor, _ := l.cmd(1, guestAgent, "doctor")
		_ = os.WriteFile(filepath.Join(l.out, "doctor.txt"), doctor.Stdout, 0o644)
		if m := call(t, "get_status", map[string]any{}); m == nil {
			t.Fatal("get_status after boot: empty reply")
		}
	})

	l.scenario(t, "agent-crash", func(t *testing.T) {
		pid := l.unitProp(t, "aos-agent.service", "MainPID")
		novaBefore := l.activeSince(t, "nova-compute.service")
		crash := time.Now()
		l.must(t, 1, "", "kill", "-9", pid)
		for {
			if p := l.unitProp(t, "aos-agent.service", "MainPID"); p != pid && p != "0" && l.unitState(t, "aos-agent.service") == "active" {
				break
			}
			if time.Since(crash) > 3*time.Minute {
				t.Fatalf("agent not back 3 min after the crash:\n%s", l.journal(t, "aos-agent.service"))
			}
			time.Sleep(500 * time.Millisecond)
		}
		l.tm.add("agent killed -> restarted and READY", time.Since(crash))
		if n := l.unitProp(t, "aos-agent.service", "NRestarts"); n == "0" {
			t.Error("systemd did not count a restart")
		}
		l.wantMode(t, 1, "volume-boot", "ex")
		l.must(t, 1, "", "dmsetup", "info", vg+"-volume--boot")
		if l.unitState(t, "nova-compute.service") != "active" {
			t.Errorf("nova-compute was stopped or restarted by the agent's crash: l.unitState(t, \"nova-compute.service\") = %q, want \"active\"", l.unitState(t, "nova-compute.service"))
		}
		if l.activeSince(t, "nova-compute.service") != novaBefore {
			t.Errorf("nova-compute was stopped or restarted by the agent's crash: l.activeSince(t, \"nova-compute.service\") = %v, want %v", l.activeSince(t, "nova-compute.service"), novaBefore)
		}
		raw, err := client.Call(ctx, "lab-h1", "list_volumes", map[string]any{}, 2*time.Minute)
		if err != nil {
			t.Fatalf("list_volumes after the restart: err = %v, want nil", err)
		}
		if !strings.Contains(string(raw), `"volume-boot"`) {
			t.Fatalf("list_volumes after the restart: string(raw) = %q, want it to contain `\"volume-boot\"`", string(raw))
		}
	})
	l.scenario(t, "sanlock-hung", l.sanlockHung)
}

// The agent's metrics endpoint in TestLabBoot's guest (its default), read
// with bash's /dev/tcp: the image has no HTTP client.
const guestMetrics = "127.0.0.1:9720"

func (l *labT) guestMetric(t *testing.T, series string) string {
	t.Helper()
	host, port, _ := strings.Cut(guestMetrics, ":")
	res := l.must(t, 1, "", "bash", "-c", `exec 3<>/dev/tcp/$1/$2 && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3`, "get", host, port)
	for _, line := range strings.Split(string(res.Stdout), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("%s not in the agent's metrics:\n%s", series, res.Stdout)
	return ""
}

// sanlockHung stops sanlock (SIGSTOP: hung, not dead) for 1.5 × the agent's
// WatchdogSec: every probe of it hangs. The agent must report the hung
// probe in STATUS and aos_collector_hung and go on petting the watchdog
// (a restart fixes nothing and walks into the start limit); once sanlock
// runs again both clear. Nothing else moves: same agent process, same locks.
func (l *labT) sanlockHung(t *testing.T) {
	const stopFor = 45 * time.Second
	agentPID := l.unitProp(t, "aos-agent.service", "MainPID")
	restarts := l.unitProp(t, "aos-agent.service", "NRestarts")
	if ws := l.unitProp(t, "aos-agent.service", "WatchdogUSec"); ws != "30s" {
		t.Fatalf("agent's WatchdogUSec %q, want 30s: the stop must outlast it", ws)
	}
	sanlockPID := l.unitProp(t, "sanlock.service", "MainPID")
	l.must(t, 1, "", "kill", "-STOP", sanlockPID)
	stopped := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			l.must(t, 1, "", "kill", "-CONT", sanlockPID)
		}
	}
	defer resume()
	var reported time.Duration
	for time.Since(stopped) < stopFor {
		if reported == 0 && strings.Contains(l.unitProp(t, "aos-agent.service", "StatusText"), "sanlock probe hung") {
			reported = time.Since(stopped)
		}
		time.Sleep(2 * time.Second)
	}
	status := l.unitProp(t, "aos-agent.service", "StatusText")
	hung := l.guestMetric(t, `aos_collector_hung{collector="sanlock"}`)
	resume()
	continued := time.Now()
	if reported == 0 {
		t.Errorf("STATUS never said the sanlock probe hung in %v; last: %q", stopFor, status)
	}
	l.tm.add("sanlock stopped -> STATUS says its probe hung", reported)
	if hung != "1" {
		t.Errorf("aos_collector_hung{collector=\"sanlock\"} = %s while sanlock was stopped, want 1", hung)
	}
	if p, n := l.unitProp(t, "aos-agent.service", "MainPID"), l.unitProp(t, "aos-agent.service", "NRestarts"); p != agentPID || n != restarts {
		t.Fatalf("the agent was restarted while sanlock was stopped (pid %s -> %s, restarts %s -> %s):\n%s",
			agentPID, p, restarts, n, l.journal(t, "aos-agent.service"))
	}
	for strings.Contains(l.unitProp(t, "aos-agent.service", "StatusText"), "hung") ||
		l.guestMetric(t, `aos_collector_hung{collector="sanlock"}`) != "0" {
		if time.Since(continued) > 2*time.Minute {
			t.Fatalf("still reported hung 2 min after sanlock continued: %q", l.unitProp(t, "aos-agent.service", "StatusText"))
		}
		time.Sleep(time.Second)
	}
	l.tm.add("sanlock continued -> hung report cleared", time.Since(continued))
	l.wantMode(t, 1, "volume-boot", "ex")
	if st := l.unitProp(t, "aos-agent.service", "StatusText"); !strings.HasPrefix(st, "serving") {
		t.Errorf("STATUS after sanlock continued: %q, want serving", st)
	}
}

// guestNetwork configures the guest's one link, to the host's broker
// through qemu (Options.BrokerPort).
const guestNetwork = "[Match]\nName=en* eth*\n[Network]\nAddress=10.0.2.15/24\n"

// agentConf is an agent configuration for a guest: the host's broker as the
// guest reaches it, the lab's VG and map.
func agentConf(brokerURL, host, stateDir string) string {
	u, _ := url.Parse(brokerURL)
	guestURL := "rabbit://" + u.User.String() + "@" + GuestBrokerAddr + u.Path
	return fmt.Sprintf("[DEFAULT]\nhost = %s\ntransport_url = %s\nstate_dir = %s\n"+
		"[lvm]\nvolume_groups = %s\nmultipath_alias = %s\nlock_start_timeout = 10m\n[metrics]\nlisten =\n", host, guestURL, stateDir, vg, LUNMap)
}

// startBrokerPort starts a broker (startBroker) and returns its URL and port.
func startBrokerPort(t *testing.T) (string, int) {
	t.Helper()
	brokerURL := startBroker(t)
	u, err := url.Parse(brokerURL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("broker URL %s: %v", brokerURL, err)
	}
	return brokerURL, port
}

// startBroker runs a private RabbitMQ on this host's loopback for the test
// and stops it (by pid) at the end; it returns the transport URL.
func startBroker(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	sh := func(args ...string) (string, error) {
		cmd := exec.Command("bash", append([]string{"../scripts/rabbitmq.sh"}, args...)...)
		cmd.Env = append(os.Environ(), "AOS_RABBIT_DIR="+dir)
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	out, err := sh("start")
	if err != nil {
		t.Fatalf("broker: %v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = sh("stop") })
	lines := strings.Split(out, "\n")
	return lines[len(lines)-1]
}

func (l *labT) unitProp(t *testing.T, unit, prop string) string {
	t.Helper()
	return strings.TrimSpace(string(l.must(t, 1, "", "systemctl", "show", "-p", prop, "--value", unit).Stdout))
}

func (l *labT) unitState(t *testing.T, unit string) string {
	t.Helper()
	return l.unitProp(t, unit, "ActiveState")
}

// activeSince is when unit last became active, in guest monotonic seconds.
func (l *labT) activeSince(t *testing.T, unit string) float64 {
	t.Helper()
	us, err := strconv.ParseInt(l.unitProp(t, unit, "ActiveEnterTimestampMonotonic"), 10, 64)
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if us == 0 {
		t.Fatalf("us = %v, want != 0", us)
	}
	return float64(us) / 1e6
}

// journal returns this boot's journal of the units (or a journalctl flag
// such as -k) with monotonic timestamps.
func (l *labT) journal(t *testing.T, which ...string) string {
	t.Helper()
	argv := []string{"journalctl", "-b", "-o", "short-monotonic", "--no-pager"}
	for _, w := range which {
		if strings.HasPrefix(w, "-") {
			argv = append(argv, w)
		} else {
			argv = append(argv, "-u", w)
		}
	}
	return string(l.must(t, 1, "", argv...).Stdout)
}

var monotonicLine = regexp.MustCompile(`^\[\s*([0-9]+\.[0-9]+)\]`)

// monotonicOf is the guest monotonic time of the first journal line
// containing s.
func monotonicOf(t *testing.T, journal, s string) float64 {
	t.Helper()
	for _, line := range strings.Split(journal, "\n") {
		if m := monotonicLine.FindStringSubmatch(line); m != nil && strings.Contains(line, s) {
			v, _ := strconv.ParseFloat(m[1], 64)
			return v
		}
	}
	t.Fatalf("no journal line with %q:\n%s", s, journal)
	return 0
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
