package volumes

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/aos-agent/aos-agent/state"
)

// BenchmarkActivate100 compares 100 concurrent Activate calls (group commit
// folds them into few lvchange runs) with 100 sequential ones, on one
// simulated host. The simulator's commands cost almost nothing, so the
// latency=50ms variants add a fixed cost per command, like a real lvchange's
// lvmlockd round trips and metadata read, to show what batching saves.
// bench/volumes-batching.sh prints the batched/sequential ratio.
func BenchmarkActivate100(b *testing.B) {
	for _, latency := range []time.Duration{0, 50 * time.Millisecond} {
		for _, batched := range []bool{true, false} {
			style := map[bool]string{true: "batched", false: "sequential"}[batched]
			b.Run(fmt.Sprintf("latency=%s/%s", latency, style), func(b *testing.B) {
				benchActivate100(b, latency, batched)
			})
		}
	}
}

func benchActivate100(b *testing.B, latency time.Duration, batched bool) {
	ctx := context.Background()
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, JoinTime: -1})
	host := c.Host("h1")
	var lvchanges atomic.Int64
	rn := run.Func(func(ctx context.Context, cmd run.Cmd) (run.Result, error) {
		if len(cmd.Argv) > 0 && cmd.Argv[0] == "lvchange" {
			lvchanges.Add(1)
		}
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-ctx.Done():
				return run.Result{}, ctx.Err()
			}
		}
		return host.Run(ctx, cmd)
	})
	if _, err := host.Run(ctx, run.Cmd{Argv: []string{"vgchange", "--lock-start", "vol"}}); err != nil {
		b.Fatal(err)
	}
	refs := make([]Ref, 100)
	for i := range refs {
		refs[i] = Ref{VG: "vol", LV: fmt.Sprintf("volume-%03d", i)}
		argv := strings.Fields("lvcreate -an -Zn -y -n " + refs[i].LV + " -L 4194304b vol")
		if _, err := host.Run(ctx, run.Cmd{Argv: argv}); err != nil {
			b.Fatal(err)
		}
	}
	held, err := state.OpenHeld(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	svc, err := New(lvm.New(rn, lvm.Options{VolumeGroups: []string{"vol"}}), sanlock.NewLockCtl(rn, time.Minute),
		CommandWiper{Runner: rn}, held, Options{VolumeGroups: []string{"vol"}})
	if err != nil {
		b.Fatal(err)
	}
	each := func(op func(Ref) error) {
		if !batched {
			for _, r := range refs {
				if err := op(r); err != nil {
					b.Fatal(err)
				}
			}
			return
		}
		var wg sync.WaitGroup
		errs := make([]error, len(refs))
		for i, r := range refs {
			wg.Go(func() { errs[i] = op(r) })
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	activate := func(r Ref) error { _, err := svc.Activate(ctx, r, Exclusive); return err }
	deactivate := func(r Ref) error { return svc.Deactivate(ctx, r) }

	lvchanges.Store(0)
	b.ResetTimer()
	for range b.N {
		each(activate)
		b.StopTimer()
		each(deactivate)
		b.StartTimer()
	}
	b.StopTimer()
	// Half the lvchange runs were deactivations, untimed but batched alike.
	b.ReportMetric(float64(lvchanges.Load())/float64(2*b.N), "lvchange/op")
}
