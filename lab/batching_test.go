//go:build lab && labbench

package lab

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
)

// TestLabBatching measures issue 4's benchmark on real lvm2 + lvmlockd +
// sanlock: 100 Activate (then Deactivate) calls made at once, which the
// volume service's group commit folds into few lvchange runs, against the
// same 100 calls made one after another, and against the ceiling: lvm2
// given all 100 LVs in one lvchange with no agent in between. Figures go to
// the timing table.
func TestLabBatching(t *testing.T) {
	const n = 100
	ctx := context.Background()
	l := bootLab(t, "batching", Options{Hosts: 1})
	l.scenario(t, "setup", func(t *testing.T) {
		start := time.Now()
		if err := l.c.StartStorage(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.c.CreateSharedVG(ctx, vg); err != nil {
			t.Fatal(err)
		}
		l.tm.add("storage + vgcreate --shared", time.Since(start))
	})
	// Counting lvchange runs shows how far the group commit folded the calls.
	var lvchanges atomic.Int64
	g := run.Func(func(ctx context.Context, c run.Cmd) (run.Result, error) {
		if c.Argv[0] == "lvchange" {
			lvchanges.Add(1)
		}
		return l.c.Host(1).Run(ctx, c)
	})
	lvmc := lvm.New(g, lvm.Options{VolumeGroups: []string{vg}, Timeout: 5 * time.Minute})
	held, err := state.OpenHeld(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := volumes.New(lvmc, sanlock.NewLockCtl(g, time.Minute), volumes.CommandWiper{Runner: g}, held,
		volumes.Options{VolumeGroups: []string{vg}})
	if err != nil {
		t.Fatal(err)
	}
	refs := make([]volumes.Ref, n)
	for i := range refs {
		refs[i] = volumes.Ref{VG: vg, LV: fmt.Sprintf("volume-%03d", i)}
	}
	l.scenario(t, "create-100", func(t *testing.T) {
		start := time.Now()
		for _, r := range refs {
			if err := lvmc.Create(ctx, r.VG, r.LV, 4<<20); err != nil {
				t.Fatal(err)
			}
		}
		l.tm.add("100 × lvcreate -an (sequential)", time.Since(start))
	})

	activate := func(r volumes.Ref) error { _, err := svc.Activate(ctx, r, volumes.Exclusive); return err }
	deactivate := func(r volumes.Ref) error { return svc.Deactivate(ctx, r) }
	measured := map[string]time.Duration{}
	calls := map[string]int64{}
	timed := func(name string, concurrent bool, op func(volumes.Ref) error) {
		l.scenario(t, name, func(t *testing.T) {
			lvchanges.Store(0)
			start := time.Now()
			if err := forEach(refs, concurrent, op); err != nil {
				t.Fatal(err)
			}
			measured[name], calls[name] = time.Since(start), lvchanges.Load()
			l.tm.add(name, measured[name])
		})
	}
	timed("activate-100-sequential", false, activate)
	timed("deactivate-100-sequential", false, deactivate)
	timed("activate-100-concurrent", true, activate)
	timed("deactivate-100-concurrent", true, deactivate)
	// The ceiling: lvm2 itself given all 100 in one lvchange, no agent.
	names := make([]string, n)
	for i, r := range refs {
		names[i] = r.LV
	}
	raw := func(name string, op func() error) {
		l.scenario(t, name, func(t *testing.T) {
			lvchanges.Store(0)
			start := time.Now()
			if err := op(); err != nil {
				t.Fatal(err)
			}
			measured[name], calls[name] = time.Since(start), lvchanges.Load()
			l.tm.add(name, measured[name])
		})
	}
	errOnly := func(_ lvm.BatchResult, err error) error { return err }
	raw("activate-100-one-lvchange", func() error { return errOnly(lvmc.Activate(ctx, lvm.Exclusive, vg, names...)) })
	raw("deactivate-100-one-lvchange", func() error { return errOnly(lvmc.Deactivate(ctx, vg, names...)) })

	// Where the ceiling comes from: the same one lvchange with lvmlockd's LV
	// locks skipped (what activation alone costs), and 2 × 50 in parallel
	// (whether lvm2 would go faster if the agent split its batches).
	lvchange := func(lvs []string, args ...string) error {
		for _, lv := range lvs {
			args = append(args, vg+"/"+lv)
		}
		_, err := l.cmd(1, append([]string{"lvchange"}, args...)...)
		return err
	}
	raw("activate-100-one-lvchange-lv-locks-skipped", func() error { return lvchange(names, "-aey", "--lockopt", "skiplv") })
	if err := lvchange(names, "-an", "--lockopt", "skiplv"); err != nil {
		t.Fatal(err)
	}
	raw("activate-100-two-lvchange-in-parallel", func() error {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for half := range errs {
			wg.Go(func() { errs[half] = lvchange(names[half*n/2:(half+1)*n/2], "-aey") })
		}
		wg.Wait()
		return errors.Join(errs...)
	})
	if err := lvchange(names, "-an"); err != nil {
		t.Fatal(err)
	}

	l.wipesVersusRenewals(t, ctx, lvmc, svc)

	fmt.Printf("\nbatching on real lvm2 (%s, -smp 2)\n%-12s %14s %14s %8s %14s %18s %8s\n", l.c.Accel,
		"op", "sequential", "concurrent", "ratio", "lvchange runs", "one lvchange (raw)", "ceiling")
	for _, op := range []string{"activate", "deactivate"} {
		seq, conc, one := measured[op+"-100-sequential"], measured[op+"-100-concurrent"], measured[op+"-100-one-lvchange"]
		fmt.Printf("%-12s %13.2fs %13.2fs %7.1fx %7d/%-6d %17.2fs %7.1fx\n", op, seq.Seconds(), conc.Seconds(), seq.Seconds()/conc.Seconds(),
			calls[op+"-100-sequential"], calls[op+"-100-concurrent"], one.Seconds(), seq.Seconds()/one.Seconds())
	}
	one, skiplv := measured["activate-100-one-lvchange"], measured["activate-100-one-lvchange-lv-locks-skipped"]
	fmt.Printf("one lvchange -aey of 100: %.0f ms per LV, %.0f ms of it the LV lock (skiplv: %.2fs); 2 × 50 in parallel: %.2fs\n",
		one.Seconds()*10, (one-skiplv).Seconds()*10, skiplv.Seconds(), measured["activate-100-two-lvchange-in-parallel"].Seconds())
}

// forEach runs op on every ref, all at once or one after another, and
// returns the first failure.
func forEach(refs []volumes.Ref, concurrent bool, op func(volumes.Ref) error) error {
	errs := make([]error, len(refs))
	if concurrent {
		var wg sync.WaitGroup
		for i, r := range refs {
			wg.Go(func() { errs[i] = op(r) })
		}
		wg.Wait()
	} else {
		for i, r := range refs {
			if errs[i] = op(r); errs[i] != nil {
				break
			}
		}
	}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%s: %w", refs[i], err)
		}
	}
	return nil
}

// wipesVersusRenewals measures what volume wipes streaming through the LUN do
// to sanlock's lease renewals, which share it (issue 19, finding 14): the
// renewals' read and write times while idle, while four dd zero-wipes run
// at once with nothing bounding them, and while the volume service clears
// the same four volumes (delete_volume, clear=zero) with at most max_copies
// (2) at once, each for a window of several renewals. A renewal slower than
// io_timeout fails; eight in a row lose the lease.
func (l *labT) wipesVersusRenewals(t *testing.T, ctx context.Context, lvmc *lvm.Client, svc *volumes.Service) {
	// Each loaded phase lasts at least this long: sanlock renews every
	// 2 × io_timeout, and a phase needs several renewals to say anything.
	const wipes, size, window = 4, 192 << 20, 40 * time.Second
	names := make([]string, wipes)
	for i := range names {
		names[i] = fmt.Sprintf("wipe-%d", i)
	}
	type load struct {
		name           string
		renewals, errs int
		maxRead, maxWr int
		wiped          int64 // bytes
		took           time.Duration
	}
	var rows []load
	renewals := func(t *testing.T) []sanlock.Renewal {
		out := l.must(t, 1, "", "sanlock", "client", "renewal", "-s", sanlock.LockspacePrefix+vg).Stdout
		r, err := sanlock.ParseRenewal(out)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	create := func(t *testing.T) {
		for _, n := range names {
			if err := lvmc.Create(ctx, vg, n, size); err != nil {
				t.Fatal(err)
			}
		}
	}
	// phase runs round until window has passed and reads the renewals sanlock
	// made meanwhile.
	phase := func(name string, perRound int64, round func(t *testing.T)) {
		l.scenario(t, name, func(t *testing.T) {
			var last uint64
			for _, r := range renewals(t) {
				last = max(last, r.Timestamp)
			}
			row := load{name: name}
			start := time.Now()
			for time.Since(start) < window {
				round(t)
				row.wiped += perRound
			}
			row.took = time.Since(start)
			for _, r := range renewals(t) {
				if r.Timestamp <= last {
					continue
				}
				row.renewals++
				row.maxRead, row.maxWr = max(row.maxRead, r.ReadMS), max(row.maxWr, r.WriteMS)
				if r.NextTimeouts > 0 || r.NextErrors > 0 {
					row.errs++
				}
			}
			rows = append(rows, row)
			l.tm.add(name, row.took)
		})
	}
	phase("renewals-idle", 0, func(t *testing.T) { time.Sleep(window) })
	l.scenario(t, "wipes-setup", create)
	phase("renewals-4-dd-at-once-unbounded", wipes*size, func(t *testing.T) {
		if _, err := lvmc.Activate(ctx, lvm.Exclusive, vg, names...); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make([]error, wipes)
		for i, n := range names {
			wg.Go(func() {
				_, errs[i] = l.cmd(1, "dd", "if=/dev/zero", "of=/dev/"+vg+"/"+n, "bs=1M", fmt.Sprintf("count=%d", size>>20),
					"oflag=direct", "conv=fsync", "status=none")
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if _, err := lvmc.Deactivate(ctx, vg, names...); err != nil {
			t.Fatal(err)
		}
	})
	phase("renewals-4-wipes-through-the-service", wipes*size, func(t *testing.T) {
		// delete_volume with clear=zero removes the volumes: make them again
		// for the next round (lvcreate costs little next to the wipe).
		if _, err := lvmc.LV(ctx, vg, names[0]); err != nil {
			create(t)
		}
		err := forEach(refsOf(names), true, func(r volumes.Ref) error {
			_, err := svc.Delete(ctx, r, volumes.ClearZero, 0)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	fmt.Printf("\nlease renewals while volumes are wiped (%s, io_timeout %v: a renewal slower than that fails)\n%-38s %7s %9s %9s %10s %10s %7s\n",
		l.c.Accel, l.c.IOTimeout(), "load", "took", "wiped", "renewals", "max read", "max write", "failed")
	for _, r := range rows {
		fmt.Printf("%-38s %6.1fs %7dMi %9d %7d ms %7d ms %7d\n", r.name, r.took.Seconds(), r.wiped>>20, r.renewals, r.maxRead, r.maxWr, r.errs)
	}
}

func refsOf(names []string) []volumes.Ref {
	out := make([]volumes.Ref, len(names))
	for i, n := range names {
		out[i] = volumes.Ref{VG: vg, LV: n}
	}
	return out
}
