//go:build lab

package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

// The lab scenarios boot one two-host cluster and run every scenario on it
// in order (booting is the expensive part). Run with scripts/lab.sh test,
// which builds the image and sets LAB_IMAGE. LAB_OUT keeps journals and the
// timing tables; LAB_IO_TIMEOUT overrides lvmlockd -o; LAB_ONLY=a,b runs
// only the scenarios named (for iterating on one); LAB_DUPLICATE_JOIN=1
// also has a guest join with a duplicate host_id (cluster-view, ~90 s);
// LAB_LEASE_WATCH=1 logs, during each shared scenario, every host's delta
// lease as each path reads it once a second (leases-*.txt in LAB_OUT).

const vg = "vol"

type timings struct {
	mu  sync.Mutex
	ops map[string][]time.Duration
	seq []string
}

func (tm *timings) add(op string, d time.Duration) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if tm.ops == nil {
		tm.ops = map[string][]time.Duration{}
	}
	if _, ok := tm.ops[op]; !ok {
		tm.seq = append(tm.seq, op)
	}
	tm.ops[op] = append(tm.ops[op], d)
}

func (tm *timings) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-56s %3s %9s %9s %9s\n", "operation", "n", "min", "median", "max")
	for _, op := range tm.seq {
		ds := slices.Clone(tm.ops[op])
		slices.Sort(ds)
		fmt.Fprintf(&b, "%-56s %3d %8.2fs %8.2fs %8.2fs\n", op, len(ds),
			ds[0].Seconds(), ds[len(ds)/2].Seconds(), ds[len(ds)-1].Seconds())
	}
	return b.String()
}

type labT struct {
	c         *Cluster
	tm        *timings
	out       string
	scenarios []string
}

// record keeps a command's verbatim stdout in LAB_OUT/recorded/name, as
// test data for parsers (scripts/lab.sh record copies them into the tree).
func (l *labT) record(t *testing.T, host int, name string, argv ...string) {
	t.Helper()
	res := l.must(t, host, "", argv...)
	dir := filepath.Join(l.out, "recorded")
	_ = os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, name), res.Stdout, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cmd runs argv on host and returns the result and error as they are.
func (l *labT) cmd(host int, argv ...string) (run.Result, error) {
	return l.c.Host(host).Run(context.Background(), run.Cmd{Argv: argv, Timeout: 5 * time.Minute})
}

// must runs argv on host, records its duration under op (if any) and fails
// the test on error.
func (l *labT) must(t *testing.T, host int, op string, argv ...string) run.Result {
	t.Helper()
	start := time.Now()
	res, err := l.cmd(host, argv...)
	if err != nil {
		t.Fatalf("h%d %s: %v\nstdout: %s", host, strings.Join(argv, " "), err, res.Stdout)
	}
	if op != "" {
		l.tm.add(op, time.Since(start))
	}
	return res
}

// refused runs argv on host, expecting LVM's refusal with wantStderr.
func (l *labT) refused(t *testing.T, host int, op, wantStderr string, argv ...string) {
	t.Helper()
	start := time.Now()
	_, err := l.cmd(host, argv...)
	var rerr *run.Error
	if !errors.As(err, &rerr) {
		t.Fatal("h: errors.As(err, &rerr) = false, want true")
	}
	if rerr.ExitCode != 5 {
		t.Fatalf("h: rerr.ExitCode = %v, want 5", rerr.ExitCode)
	}
	if !strings.Contains(rerr.Stderr, wantStderr) {
		t.Fatalf("h: rerr.Stderr = %q, want it to contain %q", rerr.Stderr, wantStderr)
	}
	l.tm.add(op, time.Since(start))
}

// lockMode returns host's lvmlockd lock mode on vg/lv: "ex", "sh" or ""
// (lvmlockd lists an LV it unlocked as "un", one it never locked not at all).
func (l *labT) lockMode(t *testing.T, host int, lv string) string {
	t.Helper()
	uuid := strings.TrimSpace(string(l.must(t, host, "", "lvs", "--noheadings", "-o", "lv_uuid", vg+"/"+lv).Stdout))
	// Retried while a running agent's own dump holds lvmlockctl's socket.
	info := string(l.lockctlInfo(t, host))
	for _, line := range strings.Split(info, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[0] == "LK" && f[1] == "LV" && f[3] == uuid {
			if f[2] == "un" {
				return ""
			}
			return f[2]
		}
	}
	return ""
}

func (l *labT) wantMode(t *testing.T, host int, lv, want string) {
	t.Helper()
	if got := l.lockMode(t, host, lv); got != want {
		t.Fatalf("h%d %s: lock mode %q, want %q", host, lv, got, want)
	}
}

var (
	buildOnce   sync.Once
	guestDaemon string // aos-lab, whose lab-guest command is the guests' control daemon
	agentDeb    string // the agent's package, which every guest installs
	buildErr    error
	accel       string
)

// buildHost runs the builds with what go needs to find its caches
// (run.Local starts commands with a minimal environment).
func buildHost() *run.Local {
	env := []string{"CGO_ENABLED=0"}
	for _, k := range []string{"HOME", "XDG_CACHE_HOME", "GOCACHE", "GOPATH", "GOMODCACHE", "GOPROXY"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return &run.Local{Env: env}
}

// buildPackage builds the agent's .deb as `make deb` does into dir, with
// packaging/version.sh's version unless version is set, and returns its path.
func buildPackage(ctx context.Context, dir, version string) (string, error) {
	argv := []string{"env", "DEB_OUT=" + dir}
	if version != "" {
		argv = append(argv, "AOS_VERSION="+version)
	}
	res, err := buildHost().Run(ctx, run.Cmd{Argv: append(argv, "bash", "../packaging/build-deb.sh", "agent"), Timeout: 10 * time.Minute})
	if err != nil {
		return "", fmt.Errorf("build the agent package: %w", err)
	}
	return strings.TrimSpace(string(res.Stdout)), nil
}

// bootLab boots a cluster for one top-level test, with its work and output
// directories under LAB_WORK/name and LAB_OUT/name, and prints its scenario
// and timing tables when the test ends (after the guests are torn down).
func bootLab(t *testing.T, name string, opts Options) *labT {
	t.Helper()
	image := os.Getenv("LAB_IMAGE")
	if image == "" {
		t.Fatal("LAB_IMAGE is not set: run scripts/lab.sh test")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the lab needs root (qemu with 9p, sysfs faults in guests)")
	}
	ctx := context.Background()
	root := os.Getenv("LAB_WORK")
	if root == "" {
		root = t.TempDir()
	}
	out := os.Getenv("LAB_OUT")
	if out == "" {
		out = filepath.Join(root, "out")
	}
	out = filepath.Join(out, name)
	// Scenarios write their files (install.diff, apt output, ...) here as
	// they go, not only at the end.
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	tm := &timings{}
	buildOnce.Do(func() {
		guestDaemon = filepath.Join(root, "aos-lab")
		_, buildErr = buildHost().Run(ctx, run.Cmd{Argv: []string{"go", "build", "-o", guestDaemon, "../cmd/aos-lab"}, Timeout: 5 * time.Minute})
		if buildErr == nil {
			start := time.Now()
			agentDeb, buildErr = buildPackage(ctx, filepath.Join(root, "deb"), "")
			tm.add("make deb (the agent's package)", time.Since(start))
		}
		start := time.Now()
		accel = ProbeAccel(ctx, image, root)
		tm.add("accelerator probe ("+accel+")", time.Since(start))
	})
	if buildErr != nil {
		t.Fatalf("build aos-lab and the agent package: %v", buildErr)
	}
	if opts.IOTimeout == 0 {
		opts.IOTimeout = 3
		if v := os.Getenv("LAB_IO_TIMEOUT"); v != "" {
			fmt.Sscan(v, &opts.IOTimeout)
		}
	}
	opts.Image, opts.GuestDaemon, opts.WorkDir, opts.Accel = image, guestDaemon, filepath.Join(root, name), accel
	if opts.Package == "" {
		opts.Package = agentDeb
	}

	l := &labT{tm: tm, out: out}
	t.Cleanup(func() {
		report := "scenario                     result     time\n" + strings.Join(l.scenarios, "\n") + "\n\n" + tm.table()
		fmt.Printf("\n%s (io_timeout %d, watchdog %v)\n%s", name, opts.IOTimeout, opts.Watchdog, report)
		_ = os.WriteFile(filepath.Join(out, "timings.txt"), []byte(report), 0o644)
	})
	start := time.Now()
	c, err := NewCluster(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	smp := 1
	if opts.Hosts == 1 {
		smp = 2
	}
	tm.add(fmt.Sprintf("boot %d guest(s), apt-get install the agent (%s, -smp %d)", opts.Hosts, c.Accel, smp), time.Since(start))
	t.Cleanup(func() {
		if err := c.CollectLogs(ctx, out); err != nil {
			t.Logf("logs: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	l.c = c
	return l
}

// scenario runs f as subtest name and adds it to the scenario table. A
// failed scenario ends the test: later ones build on its end state.
func (l *labT) scenario(t *testing.T, name string, f func(t *testing.T)) {
	// LAB_ONLY=setup,driver-story,... runs only those scenarios, for
	// iterating on one; CI sets nothing and runs all.
	if only := os.Getenv("LAB_ONLY"); only != "" && !slices.Contains(strings.Split(only, ","), name) {
		l.scenarios = append(l.scenarios, fmt.Sprintf("%-28s %-7s", name, "not run (LAB_ONLY)"))
		return
	}
	start := time.Now()
	ok := t.Run(name, f)
	r := "ok"
	if !ok {
		r = "FAILED"
	}
	l.scenarios = append(l.scenarios, fmt.Sprintf("%-28s %-7s %7.1fs", name, r, time.Since(start).Seconds()))
	if !ok {
		t.FailNow()
	}
}

func TestLab(t *testing.T) {
	ctx := context.Background()
	// 16 GiB (sparse) leaves room for the shared scenarios' GiB-sized volumes.
	// The broker is for the driver's story, told last to agents on both guests.
	brokerURL, brokerPort := startBrokerPort(t)
	l := bootLab(t, "two-hosts", Options{Hosts: 2, LUNSize: 16 << 30, BrokerPort: brokerPort})
	c, tm, scenario := l.c, l.tm, func(name string, f func(t *testing.T)) { l.scenario(t, name, f) }

	scenario("setup", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 3)
		for h := 1; h <= 2; h++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				start := time.Now()
				errs[h] = StartStorage(ctx, c.Host(h), false)
				tm.add("start multipathd+map, sanlock, lvmlockd", time.Since(start))
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := CreateSharedVG(ctx, c.Host(1), vg); err != nil {
			t.Fatal(err)
		}
		tm.add("vgcreate --shared (incl. lockspace join)", time.Since(start))
		start = time.Now()
		if err := LockStart(ctx, c.Host(2), vg); err != nil {
			t.Fatal(err)
		}
		tm.add("vgchange --lock-start (lockspace join)", time.Since(start))
	})

	scenario("basic-single-host", func(t *testing.T) {
		l.must(t, 1, "lvcreate -an", "lvcreate", "-an", "-n", "basic", "-L", "64M", vg)
		l.must(t, 1, "lvchange -aey", "lvchange", "-aey", vg+"/basic")
		l.wantMode(t, 1, "basic", "ex")
		l.must(t, 1, "lvchange -an", "lvchange", "-an", vg+"/basic")
		l.wantMode(t, 1, "basic", "")
		l.must(t, 1, "lvchange -asy", "lvchange", "-asy", vg+"/basic")
		l.wantMode(t, 1, "basic", "sh")
		l.must(t, 1, "lvchange -aey (sh->ex, same host)", "lvchange", "-aey", vg+"/basic")
		l.wantMode(t, 1, "basic", "ex")
		l.must(t, 1, "lvchange -an", "lvchange", "-an", vg+"/basic")
		l.must(t, 1, "lvremove", "lvremove", "-y", vg+"/basic")
		if _, err := l.cmd(1, "lvs", vg+"/basic"); err == nil {
			t.Fatal("basic still listed after lvremove")
		}
	})

	scenario("exclusive-conflict", func(t *testing.T) {
		l.must(t, 1, "lvcreate -an", "lvcreate", "-an", "-n", "excl", "-L", "64M", vg)
		l.must(t, 1, "lvchange -aey", "lvchange", "-aey", vg+"/excl")
		l.refused(t, 2, "lvchange -aey refused (other host ex)", "LV locked by other host", "lvchange", "-aey", vg+"/excl")
		l.refused(t, 2, "lvchange -asy refused (other host ex)", "LV locked by other host", "lvchange", "-asy", vg+"/excl")
		l.must(t, 1, "lvchange -an", "lvchange", "-an", vg+"/excl")
		l.must(t, 2, "lvchange -aey", "lvchange", "-aey", vg+"/excl")
		l.wantMode(t, 2, "excl", "ex")
		l.must(t, 2, "lvchange -an", "lvchange", "-an", vg+"/excl")
	})

	scenario("shared-both-hosts", func(t *testing.T) {
		l.must(t, 1, "lvcreate -an", "lvcreate", "-an", "-n", "shared", "-L", "64M", vg)
		l.must(t, 1, "lvchange -asy", "lvchange", "-asy", vg+"/shared")
		l.must(t, 2, "lvchange -asy", "lvchange", "-asy", vg+"/shared")
		l.wantMode(t, 1, "shared", "sh")
		l.wantMode(t, 2, "shared", "sh")
		l.refused(t, 1, "lvchange -aey refused (sh->ex, other host sh)", "LV locked by other host", "lvchange", "-aey", vg+"/shared")
		l.must(t, 1, "lvchange -an", "lvchange", "-an", vg+"/shared")
		l.must(t, 2, "lvchange -an", "lvchange", "-an", vg+"/shared")
	})

	scenario("one-path-lost", func(t *testing.T) {
		l.must(t, 1, "lvcreate -an", "lvcreate", "-an", "-n", "degraded", "-L", "64M", vg)
		l.must(t, 1, "lvchange -aey", "lvchange", "-aey", vg+"/degraded")
		l.record(t, 1, "dmsetup-status-lun0.healthy", "dmsetup", "status", LUNMap)
		l.record(t, 1, "dmsetup-deps-lun0", "dmsetup", "deps", "-o", "devname", LUNMap)
		write := []string{"dd", "if=/dev/zero", "of=/dev/" + vg + "/degraded", "bs=1M", "count=4", "oflag=direct"}
		if err := c.FailPaths(ctx, 1, false); err != nil {
			t.Fatal(err)
		}
		// The write right after the fault is what multipath must carry over
		// to the other path.
		l.must(t, 1, "", write...)
		if err := WaitMap(ctx, c.Host(1), 1); err != nil {
			t.Fatal(err)
		}
		l.must(t, 1, "dd 4M direct on a degraded map", write...)
		l.record(t, 1, "dmsetup-status-lun0.one-path-offline", "dmsetup", "status", LUNMap)
		l.record(t, 1, "multipath-ll.one-path-offline", "multipath", "-ll")
		if err := c.RestorePaths(ctx, 1); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := WaitMap(ctx, c.Host(1), 2); err != nil {
			t.Fatal(err)
		}
		tm.add("path restored -> multipathd reinstates", time.Since(start))
		l.must(t, 1, "lvchange -an", "lvchange", "-an", vg+"/degraded")
	})

	l.cowSnapshots(t, ctx)
	l.sharedScenarios(t, ctx)
	l.driverStory(t, brokerURL)
	l.cinderServices(t, brokerURL)
	l.clusterView(t, brokerURL)
}

// milestones keeps the journal lines that mark the lease-loss timeline
// (the first I/O error, the lease failing, the killpath, lvmlockctl, the kill hook) and
// drops sanlock's twice-a-second renewal errors.
func milestones(journal string) string {
	var keep []string
	firstIOError := false
	for _, line := range strings.Split(journal, "\n") {
		switch {
		case strings.Contains(line, "rejecting I/O to offline device"):
			if !firstIOError {
				keep = append(keep, line)
				firstIOError = true
			}
		case strings.Contains(line, "check_our_lease failed"),
			strings.Contains(line, "sig 100"),
			strings.Contains(line, "lvmlockctl["),
			strings.Contains(line, "kill-hook"),
			strings.Contains(line, "all pids clear"):
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// TestLabWatchdogReset runs one host with wdmd over softdog and sanlock -w 1
// and no kill command: after it loses its lease storage with an LV active,
// the watchdog must reset it (qemu exits: -no-reboot).
func TestLabWatchdogReset(t *testing.T) {
	ctx := context.Background()
	l := bootLab(t, "watchdog", Options{Hosts: 1, Watchdog: true})
	l.scenario(t, "setup", func(t *testing.T) {
		start := time.Now()
		if err := l.c.StartStorage(ctx); err != nil {
			t.Fatal(err)
		}
		l.tm.add("start multipathd+map, softdog, wdmd, sanlock, lvmlockd", time.Since(start))
		start = time.Now()
		if err := l.c.CreateSharedVG(ctx, vg); err != nil {
			t.Fatal(err)
		}
		l.tm.add("vgcreate --shared (incl. lockspace join)", time.Since(start))
	})
	l.scenario(t, "lease-lost-watchdog-reset", func(t *testing.T) {
		l.must(t, 1, "lvcreate -an", "lvcreate", "-an", "-n", "victim", "-L", "64M", vg)
		l.must(t, 1, "lvchange -aey", "lvchange", "-aey", vg+"/victim")
		h1 := l.c.Host(1)
		fault := time.Now()
		if err := l.c.FailPaths(ctx, 1, true); err != nil {
			t.Fatal(err)
		}
		var spaceDead time.Duration
		timeout := time.After(4 * time.Minute)
		for {
			if spaceDead == 0 {
				if res, err := l.cmd(1, "sanlock", "client", "status", "-D"); err == nil && strings.Contains(string(res.Stdout), "space_dead=1") {
					spaceDead = time.Since(fault)
					l.tm.add("path loss -> lease dead (space_dead=1)", spaceDead)
				}
			}
			select {
			case <-h1.Exited():
				l.tm.add("path loss -> watchdog reset (qemu exit)", time.Since(fault))
				return
			case <-timeout:
				t.Fatalf("no watchdog reset %v after the fault", time.Since(fault))
			case <-time.After(2 * time.Second):
			}
		}
	})
}
