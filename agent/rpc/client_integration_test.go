//go:build integration

package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIntegrationCallMonitorKeepsLongCallAlive(t *testing.T) {
	f := startAgent(t, 4)
	// 5 s of work, 2 s of allowed silence: the server's heartbeat every 1 s
	// (_timeout/2) keeps the call alive.
	res, err := f.client.Call(context.Background(), "", "sleep", map[string]int{"ms": 5000}, 2*time.Second)
	if err != nil {
		t.Fatalf("5 s call with a 2 s monitor timeout: err = %v, want nil", err)
	}
	if string(res) != `"slept"` {
		t.Fatalf("5 s call with a 2 s monitor timeout: string(res) = %q, want `\"slept\"`", string(res))
	}
}

func TestIntegrationCallerContext(t *testing.T) {
	f := startAgent(t, 4)
	ctx := WithCallerContext(context.Background(), map[string]any{"request_id": "req-abc", "user_id": "u1", "auth_token": "secret"})
	res, err := f.client.Call(ctx, "", "context", nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	{
		err := json.Unmarshal(res, &got)
		if err != nil {
			t.Fatalf("server saw context: err = %v, want nil", err)
		}
		if got["request_id"] != "req-abc" {
			t.Fatalf("server saw context: got[\"request_id\"] = %q, want \"req-abc\"", got["request_id"])
		}
		if got["user_id"] != "u1" {
			t.Fatalf("server saw context: got[\"user_id\"] = %q, want \"u1\"", got["user_id"])
		}
	}
	// Without a caller context a fresh request id is still sent.
	res, err = f.client.Call(context.Background(), "", "context", nil, 10*time.Second)
	if err != nil {
		t.Fatalf("default context: err = %v, want nil", err)
	}
	if !strings.Contains(string(res), `"request_id":"req-`) {
		t.Fatalf("default context: string(res) = %q, want it to contain `\"request_id\":\"req-`", string(res))
	}
}

// The broker drops the client's reply connection while a call is in flight;
// the consumer comes back by itself and the call gets its reply, without a
// further call being made.
func TestIntegrationReplyConsumerRecovers(t *testing.T) {
	f := startAgent(t, 4)
	if _, err := f.client.Call(context.Background(), "", "echo", nil, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		res, err := f.client.Call(context.Background(), "", "sleep", map[string]int{"ms": 3000}, 20*time.Second)
		if err == nil && string(res) != `"slept"` {
			err = &RemoteError{Class: "unexpected", Message: string(res)}
		}
		done <- err
	}()
	time.Sleep(500 * time.Millisecond)
	closed := 0
	for _, line := range strings.Split(rabbitctl(t, "list_connections", "--no-table-headers", "pid", "client_properties"), "\n") {
		pid, props, ok := strings.Cut(line, "\t")
		if ok && strings.Contains(props, ":reply\"") {
			rabbitctl(t, "close_connection", pid, "test: drop the reply consumer")
			closed++
		}
	}
	// An earlier test's client may still be listed while the broker
	// finishes closing it; closing it too is harmless.
	if closed == 0 {
		t.Fatal("no reply connection found to close")
	}
	if err := <-done; err != nil {
		t.Fatalf("call in flight across the reply connection loss: %v", err)
	}
}

// One fanout call reaches every server of the topic and gathers one reply
// from each within the wait; a failing method comes back as its error.
func TestIntegrationFanoutCallGathersEveryServer(t *testing.T) {
	f := startAgent(t, 4)
	cfg2 := f.cfg
	cfg2.Server = "host2"
	srv2, err := NewServer(cfg2, Dispatcher{Version: "1.0", Methods: map[string]Handler{
		"echo":     func(_ context.Context, r *Request) (any, error) { return map[string]string{"from": "host2"}, nil },
		"conflict": func(context.Context, *Request) (any, error) { return "no conflict here", nil },
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv2.Stop(context.Background())

	sent, replies, err := f.client.FanoutCall(ctx, "echo", map[string]string{"from": "host1"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range replies {
		if r.Err != nil {
			t.Fatalf("reply: r.Err = %v, want nil", r.Err)
		}
		if r.Received.Before(sent) {
			t.Fatal("reply: r.Received.Before(sent) = true, want false")
		}
		got = append(got, string(r.Result))
	}
	slices.Sort(got)
	if want := []string{`{"from":"host1"}`, `{"from":"host2"}`}; !slices.Equal(got, want) {
		t.Fatalf("replies %q, want %q", got, want)
	}

	_, replies, err = f.client.FanoutCall(ctx, "conflict", nil, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var failed, ok int
	for _, r := range replies {
		var re *RemoteError
		switch {
		case errors.As(r.Err, &re) && re.Class == "LockConflict":
			failed++
		case r.Err == nil:
			ok++
		}
	}
	if failed != 1 {
		t.Fatalf("conflict through fanout: failed = %v, want 1", failed)
	}
	if ok != 1 {
		t.Fatalf("conflict through fanout: ok = %v, want 1", ok)
	}
}
