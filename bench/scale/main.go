// Command scale measures the cluster at scale on the simulator (issue 15):
// -hosts agents (default 32) share one VG of -lvs LVs (default 2,000) behind
// one real broker. Figures, measured in one run:
//   - creating the LVs through one agent (the cinder-volume host);
//   - an idle minute of all agents with that VG: CPU and memory;
//   - a refresh fanout (one cast) until every host ran it, read from each
//     agent's aos_rpc_requests_total;
//   - the cluster view (a fanout call, every host's facts with the VG);
//   - -activations concurrent exclusive activations (default 500) spread
//     over the hosts, then their deactivations: wall time, p50/p99.
//
// The agents run in this one process (internal/demo), so CPU and memory are
// the process's; per agent is that divided by the hosts, above the fixed
// cost of one Go runtime that a real agent process has on its own.
//
//	go run ./bench/scale -url "$(scripts/rabbitmq.sh start)"   (make bench-scale)
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/aos-agent/aos-agent/agent/cluster"
	"github.com/aos-agent/aos-agent/agent/rpc"
	"github.com/aos-agent/aos-agent/internal/demo"
)

func main() {
	url := flag.String("url", os.Getenv("AOS_TEST_AMQP_URL"), "transport URL")
	hosts := flag.Int("hosts", 32, "simulated hosts, one agent each")
	lvs := flag.Int("lvs", 2000, "LVs in the shared VG")
	activations := flag.Int("activations", 500, "concurrent exclusive activations, spread over the hosts")
	createConc := flag.Int("create-concurrency", 32, "create_volume calls in flight")
	idle := flag.Duration("idle", time.Minute, "idle period measured with every agent and LV in place")
	flag.Parse()
	if err := run(*url, *hosts, *lvs, *activations, *createConc, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "bench/scale:", err)
		os.Exit(1)
	}
}

func run(url string, nHosts, nLVs, nAct, createConc int, idle time.Duration) error {
	if url == "" {
		return fmt.Errorf("no -url (or AOS_TEST_AMQP_URL)")
	}
	ctx := context.Background()
	work, err := os.MkdirTemp("", "aos-bench-scale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	hosts := make([]string, nHosts)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%02d", i+1)
	}
	topic := fmt.Sprintf("aos-scale-%d", time.Now().UnixNano())
	fmt.Printf("scale: %d hosts, %d LVs, %d concurrent activations; cores %d\n", nHosts, nLVs, nAct, runtime.NumCPU())
	base := sample()
	start := time.Now()
	c, err := demo.StartCluster(ctx, demo.Options{TransportURL: url, WorkDir: work, Topic: topic, Version: "bench",
		PVSize: int64(nLVs+64) << 30}, hosts, &bytes.Buffer{}, zap.NewNop())
	if err != nil {
		return err
	}
	defer c.Stop()
	fmt.Printf("start: %d agents joined and serving in %s\n", nHosts, time.Since(start).Round(time.Millisecond))
	client, err := rpc.NewClient(rpc.Config{URL: url, Topic: topic})
	if err != nil {
		return err
	}
	defer client.Close()
	call := func(host, method string, args map[string]any) (time.Duration, error) {
		t0 := time.Now()
		_, err := client.Call(ctx, host, method, args, 10*time.Minute)
		if err != nil {
			err = fmt.Errorf("%s %v on %s: %w", method, args, host, err)
		}
		return time.Since(t0), err
	}
	name := func(i int) string { return fmt.Sprintf("volume-%05d", i) }

	// The LVs, created through the cinder-volume host as the driver does.
	lat, wall, err := concurrently(nLVs, createConc, func(i int) (time.Duration, error) {
		return call(hosts[0], "create_volume", map[string]any{"volume_name": name(i), "size": 1})
	})
	if err != nil {
		return err
	}
	fmt.Printf("create: %d LVs on %s, %d in flight: %s, %.0f/s, p50 %s p99 %s\n", nLVs, hosts[0], createConc,
		wall.Round(time.Millisecond), float64(nLVs)/wall.Seconds(), pct(lat, 50), pct(lat, 99))

	// An idle period: health polls of every agent over the full VG.
	runtime.GC()
	before := sample()
	time.Sleep(idle)
	after := sample()
	cpu := after.cpu - before.cpu
	fmt.Printf("idle %s: CPU %.1f%% of one core for %d agents (%.2f%% each); RSS %.0f MiB (%.1f MiB each above the %.0f MiB before start); heap %.0f MiB; goroutines %d\n",
		idle, 100*cpu.Seconds()/idle.Seconds(), nHosts, 100*cpu.Seconds()/idle.Seconds()/float64(nHosts),
		after.rssMiB, (after.rssMiB-base.rssMiB)/float64(nHosts), base.rssMiB, after.heapMiB, after.goroutines)

	// A refresh fanout: one cast, done when every agent counted it.
	refreshed := func() (n int) {
		for _, h := range hosts {
			n += int(counter(c.Registry(h), "aos_rpc_requests_total", map[string]string{"method": "refresh_volume"}))
		}
		return n
	}
	before0 := refreshed()
	t0 := time.Now()
	if err := client.FanoutCast(ctx, "refresh_volume", map[string]any{"volume_name": name(0)}); err != nil {
		return err
	}
	for refreshed()-before0 < nHosts {
		if time.Since(t0) > 2*time.Minute {
			return fmt.Errorf("refresh fanout: %d of %d hosts after 2 min", refreshed()-before0, nHosts)
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Printf("refresh fanout: all %d hosts ran it %s after the cast\n", nHosts, time.Since(t0).Round(time.Millisecond))

	rep, err := cluster.Gather(ctx, client, cluster.Options{Wait: 30 * time.Second})
	if err != nil {
		return err
	}
	fmt.Printf("cluster view: %d of %d hosts answered, last after %s, %d messages\n", len(rep.Answered), nHosts,
		rep.LastAnswer.Round(time.Millisecond), rep.Messages)

	// Concurrent exclusive activations spread over the hosts, all at once.
	for _, phase := range []struct{ method, mode string }{{"activate_volume", "exclusive"}, {"deactivate_volume", ""}} {
		lat, wall, err := concurrently(nAct, nAct, func(i int) (time.Duration, error) {
			args := map[string]any{"volume_name": name(i)}
			if phase.mode != "" {
				args["mode"] = phase.mode
			}
			return call(hosts[i%nHosts], phase.method, args)
		})
		if err != nil {
			return err
		}
		fmt.Printf("%s: %d at once over %d hosts: %s, %.0f/s, p50 %s p99 %s\n", phase.method, nAct, nHosts,
			wall.Round(time.Millisecond), float64(nAct)/wall.Seconds(), pct(lat, 50), pct(lat, 99))
	}
	end := sample()
	fmt.Printf("whole run: CPU %s, peak RSS %.0f MiB\n", (end.cpu - base.cpu).Round(time.Millisecond), end.hwmMiB)
	return nil
}

// concurrently runs n jobs, at most conc at once, and returns each one's
// latency and the wall time; the first error ends it.
func concurrently(n, conc int, job func(i int) (time.Duration, error)) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			lat[i], errs[i] = job(i)
		}()
	}
	wg.Wait()
	wall := time.Since(t0)
	for _, err := range errs {
		if err != nil {
			return nil, 0, err
		}
	}
	return lat, wall, nil
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)].Round(time.Millisecond)
}

// counter sums a counter's series whose labels include match.
func counter(reg *prometheus.Registry, name string, match map[string]string) float64 {
	if reg == nil {
		return 0
	}
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if labels[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

type usage struct {
	cpu                     time.Duration
	rssMiB, hwmMiB, heapMiB float64
	goroutines              int
}

func sample() usage {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	u := usage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), goroutines: runtime.NumGoroutine()}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	u.heapMiB = float64(ms.HeapAlloc) / (1 << 20)
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "VmRSS:":
			u.rssMiB = kb / 1024
		case "VmHWM:":
			u.hwmMiB = kb / 1024
		}
	}
	return u
}
