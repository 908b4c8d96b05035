// Command rpcbench measures round-trip latency (one caller) and throughput
// (many callers) of a trivial RPC through a real broker, against three
// servers in the same run: the Go agent (agent/rpc), a real Python
// oslo.messaging server, and a bare amqp091 responder that does nothing but
// reply (the floor set by the broker and client; the agent's overhead is its
// latency above that floor).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/aos-agent/aos-agent/agent/rpc"
)

func main() {
	url := flag.String("url", os.Getenv("AOS_TEST_AMQP_URL"), "transport URL")
	calls := flag.Int("latency-calls", 2000, "sequential calls for the latency figures")
	duration := flag.Duration("duration", 5*time.Second, "length of each throughput run")
	callers := flag.Int("callers", 32, "concurrent callers for throughput")
	flag.Parse()
	if err := run(*url, *calls, *duration, *callers); err != nil {
		fmt.Fprintln(os.Stderr, "rpcbench:", err)
		os.Exit(1)
	}
}

type result struct {
	name     string
	p50, p99 time.Duration
	rate     float64
}

func run(url string, calls int, duration time.Duration, callers int) error {
	ctx := context.Background()
	goSrv, err := rpc.NewServer(rpc.Config{URL: url, Topic: "bench-go", Server: "go1"}, rpc.Dispatcher{Version: "1.0",
		Methods: map[string]rpc.Handler{"ping": func(_ context.Context, r *rpc.Request) (any, error) { return r.Args, nil }}})
	if err != nil {
		return err
	}
	if err := goSrv.Start(ctx); err != nil {
		return err
	}
	defer goSrv.Stop(ctx)

	stopRaw, err := startRawResponder(url, "bench-raw")
	if err != nil {
		return err
	}
	defer stopRaw()

	_, self, _, _ := runtime.Caller(0)
	py := exec.Command("/usr/bin/python3", filepath.Join(filepath.Dir(self), "oslo_server.py"), url, "bench-py")
	pyIn, _ := py.StdinPipe()
	pyOut, _ := py.StdoutPipe()
	py.Stderr = nil // oslo logs a warning per pooled connection; READY is what we check
	if err := py.Start(); err != nil {
		return err
	}
	defer func() { pyIn.Close(); _ = py.Wait() }()
	ready := make([]byte, 6)
	if _, err := io.ReadFull(pyOut, ready); err != nil || string(ready) != "READY\n" {
		return fmt.Errorf("python server did not start: %q %v", ready, err)
	}

	var results []result
	for _, topic := range []string{"bench-raw", "bench-go", "bench-py"} {
		r, err := measure(url, topic, calls, duration, callers)
		if err != nil {
			return fmt.Errorf("%s: %w", topic, err)
		}
		results = append(results, r)
	}
	fmt.Printf("%-10s %10s %10s %12s\n", "server", "p50", "p99", "calls/s")
	for _, r := range results {
		fmt.Printf("%-10s %10s %10s %12.0f\n", strings.TrimPrefix(r.name, "bench-"), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.rate)
	}
	raw, goR, pyR := results[0], results[1], results[2]
	fmt.Printf("go/python throughput ratio: %.1fx (goal >= 3x)\n", goR.rate/pyR.rate)
	fmt.Printf("agent overhead over bare responder: p50 %s, p99 %s (goal p99 <= 2ms)\n",
		(goR.p50 - raw.p50).Round(time.Microsecond), (goR.p99 - raw.p99).Round(time.Microsecond))
	return nil
}

func measure(url, topic string, calls int, duration time.Duration, callers int) (result, error) {
	client, err := rpc.NewClient(rpc.Config{URL: url, Topic: topic})
	if err != nil {
		return result{}, err
	}
	defer client.Close()
	ctx := context.Background()
	args := map[string]any{"vol": "volume-1", "size_gb": 10}
	for range 50 { // warm up: connections, reply queue, exchange declares
		if _, err := client.Call(ctx, "", "ping", args, 10*time.Second); err != nil {
			return result{}, err
		}
	}
	lat := make([]time.Duration, 0, calls)
	for range calls {
		start := time.Now()
		if _, err := client.Call(ctx, "", "ping", args, 10*time.Second); err != nil {
			return result{}, err
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	var done atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(duration)
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, err := client.Call(ctx, "", "ping", args, 30*time.Second); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				done.Add(1)
			}
		}()
	}
	start := time.Now()
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return result{}, err
	}
	return result{name: topic, p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], rate: float64(done.Load()) / time.Since(start).Seconds()}, nil
}

// startRawResponder answers every request on topic with {"result": args}
// using amqp091 alone: no dispatcher, no confirms, no dedupe.
func startRawResponder(url, topic string) (stop func(), err error) {
	conn, err := amqp.Dial(strings.Replace(url, "rabbit://", "amqp://", 1))
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.ExchangeDeclare("openstack", "topic", false, false, false, false, nil)
	}
	if err == nil {
		_, err = ch.QueueDeclare(topic, false, false, false, false, nil)
	}
	if err == nil {
		err = ch.QueueBind(topic, topic, "openstack", false, nil)
	}
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = ch.Consume(topic, "", true, false, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	go func() {
		for d := range deliveries {
			var outer struct {
				Msg string `json:"oslo.message"`
			}
			var in struct {
				Args  json.RawMessage `json:"args"`
				MsgID string          `json:"_msg_id"`
				Reply string          `json:"_reply_q"`
			}
			if json.Unmarshal(d.Body, &outer) != nil || json.Unmarshal([]byte(outer.Msg), &in) != nil {
				continue
			}
			inner, _ := json.Marshal(map[string]any{"result": in.Args, "failure": nil, "ending": true, "_msg_id": in.MsgID, "_unique_id": "x"})
			body, _ := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": string(inner)})
			_ = ch.Publish("", in.Reply, false, false, amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", Body: body})
		}
	}()
	return func() { conn.Close() }, nil
}
