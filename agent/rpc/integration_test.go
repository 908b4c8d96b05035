//go:build integration

package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap/zaptest"

	"github.com/aos-agent/aos-agent/errdefs"
)

// These tests run against the real broker started by scripts/test.d/30-rpc.sh.
func brokerURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("AOS_TEST_AMQP_URL")
	if url == "" {
		t.Fatal("AOS_TEST_AMQP_URL is not set: run scripts/rabbitmq.sh start and export its URL")
	}
	return url
}

type fixture struct {
	cfg     Config
	srv     *Server
	client  *Client
	mu      sync.Mutex
	fanouts int
}

func startAgent(t *testing.T, concurrency int) *fixture {
	t.Helper()
	f := &fixture{}
	f.cfg = Config{URL: brokerURL(t), Topic: "go-it-" + newID()[:8], Server: "host1", Logger: zaptest.NewLogger(t),
		Concurrency: concurrency, ReplyRetryTimeout: time.Second, ShutdownTimeout: 5 * time.Second}
	d := Dispatcher{Version: "1.0", Methods: map[string]Handler{
		"echo":    func(_ context.Context, r *Request) (any, error) { return r.Args, nil },
		"context": func(_ context.Context, r *Request) (any, error) { return r.LogContext(), nil },
		"sleep": func(ctx context.Context, r *Request) (any, error) {
			var ms int
			_ = json.Unmarshal(r.Args["ms"], &ms)
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
				return "slept", nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		"conflict": func(context.Context, *Request) (any, error) {
			return nil, kwErr{&errdefs.LockConflictError{VG: "vg", LV: "lv", HostID: 3}}
		},
		"refresh": func(context.Context, *Request) (any, error) {
			f.mu.Lock()
			f.fanouts++
			f.mu.Unlock()
			return nil, nil
		},
	}}
	var err error
	if f.srv, err = NewServer(f.cfg, d); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !f.srv.Connected() {
		t.Fatal("not connected after Start")
	}
	if f.client, err = NewClient(f.cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = f.client.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := f.srv.Stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return f
}

func TestIntegrationCallCastFanout(t *testing.T) {
	f := startAgent(t, 8)
	ctx := context.Background()
	res, err := f.client.Call(ctx, "", "echo", map[string]any{"a": 1}, 10*time.Second)
	if err != nil {
		t.Fatalf("call: err = %v, want nil", err)
	}
	if string(res) != `{"a":1}` {
		t.Fatalf("call: string(res) = %q, want `{\"a\":1}`", string(res))
	}
	{
		res, err = f.client.Call(ctx, "host1", "echo", nil, 10*time.Second)
		if err != nil {
			t.Fatalf("server call: err = %v, want nil", err)
		}
		if string(res) != `{}` {
			t.Fatalf("server call: string(res) = %q, want `{}`", string(res))
		}
	}
	if err := f.client.Cast(ctx, "host1", "refresh", nil); err != nil {
		t.Fatal(err)
	}
	if err := f.client.FanoutCast(ctx, "refresh", nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		n := f.fanouts
		f.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cast+fanout ran %d times, want 2", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIntegrationRemoteErrors(t *testing.T) {
	f := startAgent(t, 8)
	_, err := f.client.Call(context.Background(), "", "conflict", nil, 10*time.Second)
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatal("got: errors.As(err, &re) = false, want true")
	}
	if !errors.Is(err, errdefs.ErrLockConflict) {
		t.Fatalf("got: err = %v, want errdefs.ErrLockConflict", err)
	}
	if re.Kwargs["host_id"] != float64(7) {
		t.Fatalf("got: re.Kwargs[\"host_id\"] = %v, want %v", re.Kwargs["host_id"], float64(7))
	}
	_, err = f.client.Call(context.Background(), "", "nope", nil, 10*time.Second)
	if !errors.As(err, &re) {
		t.Fatal("got: errors.As(err, &re) = false, want true")
	}
	if re.Class != "NoSuchMethod" {
		t.Fatalf("got: re.Class = %q, want \"NoSuchMethod\"", re.Class)
	}
	if re.Module != dispatcherModule {
		t.Fatalf("got: re.Module = %v, want %v", re.Module, dispatcherModule)
	}
}

func TestIntegrationTimeoutDoesNotBlockOthers(t *testing.T) {
	f := startAgent(t, 4)
	ctx := context.Background()
	_, err := f.client.Call(ctx, "", "sleep", map[string]int{"ms": 3000}, 500*time.Millisecond)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	// The slow method still runs; other calls are served meanwhile.
	if _, err := f.client.Call(ctx, "", "echo", nil, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationConcurrentCalls(t *testing.T) {
	f := startAgent(t, 16)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := f.client.Call(context.Background(), "", "echo", map[string]int{"i": i}, 20*time.Second)
			if err == nil && string(res) != fmt.Sprintf(`{"i":%d}`, i) {
				err = fmt.Errorf("call %d got %s", i, res)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A reply to a vanished queue is retried, then dropped, without holding up
// other requests.
func TestIntegrationReplyToMissingQueueDropped(t *testing.T) {
	f := startAgent(t, 2)
	body, _ := envelope(map[string]any{"method": "echo", "args": map[string]any{}, "_msg_id": newID(),
		"_reply_q": "reply_gone_" + newID(), "_unique_id": newID()})
	if _, err := f.client.pub.publish(context.Background(), f.client.topicExchange(), f.cfg.Topic, false, properties(body, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Call(context.Background(), "", "echo", nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for testutilCounter(f.srv) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("reply to missing queue never dropped")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop deletes the fanout queue; the topic queues stay (as oslo).
func TestIntegrationStopDeletesFanoutQueue(t *testing.T) {
	f := startAgent(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	conn, _, err := f.srv.dialer.dial("check")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for q, wantExists := range map[string]bool{f.srv.FanoutQueue(): false, f.cfg.Topic: true} {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, err = ch.QueueDeclarePassive(q, false, false, false, false, nil)
		var ae *amqp.Error
		exists := !(errors.As(err, &ae) && ae.Code == amqp.NotFound)
		if exists != wantExists {
			t.Errorf("queue %s exists=%v, want %v (%v)", q, exists, wantExists, err)
		}
		if err == nil {
			_ = ch.Close()
		}
	}
}

// Stop lets a running method finish and deliver its reply.
func TestIntegrationStopFinishesInFlight(t *testing.T) {
	f := startAgent(t, 2)
	got := make(chan error, 1)
	go func() {
		res, err := f.client.Call(context.Background(), "", "sleep", map[string]int{"ms": 700}, 10*time.Second)
		if err == nil && string(res) != `"slept"` {
			err = fmt.Errorf("result %s", res)
		}
		got <- err
	}()
	for testutilInflight(f.srv) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("in-flight call: %v", err)
	}
}
