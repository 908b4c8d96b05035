package sim

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
)

func TestManualClockOrderAndStop(t *testing.T) {
	clk := NewManualClock(time.Unix(0, 0))
	var fired []string
	clk.AfterFunc(2*time.Second, func() {
		fired = append(fired, fmt.Sprint("b@", clk.Now().Unix()))
		clk.AfterFunc(time.Second, func() { fired = append(fired, fmt.Sprint("c@", clk.Now().Unix())) })
	})
	clk.AfterFunc(time.Second, func() { fired = append(fired, fmt.Sprint("a@", clk.Now().Unix())) })
	stop := clk.AfterFunc(time.Second, func() { fired = append(fired, "stopped") })
	if !stop() {
		t.Fatal("stop must report a pending timer once: stop() = false, want true")
	}
	if stop() {
		t.Fatal("stop must report a pending timer once: stop() = true, want false")
	}
	clk.Advance(5 * time.Second)
	if got := fmt.Sprint(fired); got != "[a@1 b@2 c@3]" {
		t.Fatalf("fired %s", got)
	}
	if clk.Now().Unix() != 5 {
		t.Fatalf("now %v", clk.Now())
	}
}

func TestScaledClockDrivesTimers(t *testing.T) {
	clk := NewScaledClock(time.Unix(0, 0), 1e6)
	done := make(chan struct{})
	clk.AfterFunc(time.Hour, func() { close(done) })
	<-done
	if !clk.Now().After(time.Unix(0, 0)) {
		t.Fatal("scaled time did not move")
	}
	if err := sleep(context.Background(), clk, time.Minute); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleep(ctx, NewManualClock(time.Unix(0, 0)), time.Second); err == nil {
		t.Fatal("sleep must end with its context")
	}
	if c := NewScaledClock(time.Unix(0, 0), 0); c.scale != 1 {
		t.Fatal("scale 0 must mean real time")
	}
}

func BenchmarkBatchActivate100(b *testing.B) {
	c := NewCluster(Options{Hosts: []HostSpec{{Name: "h1", HostID: 1}}, JoinTime: -1})
	h := c.Host("h1")
	ctx := context.Background()
	mustRun := func(argv ...string) {
		if _, err := h.Run(ctx, run.Cmd{Argv: argv}); err != nil {
			b.Fatal(err)
		}
	}
	mustRun("vgchange", "--lock-start", "vol")
	on, off := []string{"lvchange", "-aey"}, []string{"lvchange", "-an"}
	for i := range 100 {
		name := fmt.Sprintf("volume-%03d", i)
		mustRun("lvcreate", "-an", "-Zn", "-y", "-n", name, "-L", "4194304b", "vol")
		on, off = append(on, "vol/"+name), append(off, "vol/"+name)
	}
	b.ResetTimer()
	for range b.N {
		mustRun(on...)
		mustRun("lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "-o", "lv_name,lv_size,lv_attr", "vol")
		mustRun(off...)
	}
}
