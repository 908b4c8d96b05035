// Command rpctestserver runs agent/rpc with test methods, for the Python
// contract suite and the benchmark. It prints "READY <fanout queue>" once
// consuming and stops gracefully on SIGTERM.
//
// Methods: echo (returns its args), sleep(seconds), fail_with(class, message),
// count(key) (records one effect per call, for duplicate detection),
// counts() (all counters), whoami() (the server name), record/recorded (casts).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/aos-agent/aos-agent/agent/rpc"
	"github.com/aos-agent/aos-agent/errdefs"
)

func main() {
	cfg := rpc.Config{}
	flag.StringVar(&cfg.URL, "url", os.Getenv("AOS_TEST_AMQP_URL"), "transport URL")
	flag.StringVar(&cfg.Exchange, "exchange", "openstack", "control exchange")
	flag.StringVar(&cfg.Topic, "topic", "aos-agent-test", "topic")
	flag.StringVar(&cfg.Server, "server", "agent1", "server name")
	flag.DurationVar(&cfg.ReplyRetryTimeout, "reply-retry", 5*time.Second, "how long to retry replies to a missing queue")
	flag.BoolVar(&cfg.TLS, "tls", false, "TLS with a rabbit:// or amqp:// URL (oslo's ssl = true)")
	flag.StringVar(&cfg.CAFile, "ca", "", "TLS CA file (amqps://, or -tls)")
	flag.StringVar(&cfg.CertFile, "cert", "", "TLS client certificate")
	flag.StringVar(&cfg.KeyFile, "key", "", "TLS client key")
	flag.BoolVar(&cfg.Durable, "durable", false, "amqp_durable_queues")
	flag.BoolVar(&cfg.AutoDelete, "auto-delete", false, "amqp_auto_delete")
	flag.BoolVar(&cfg.QuorumQueues, "quorum", false, "rabbit_quorum_queue")
	flag.BoolVar(&cfg.HAQueues, "ha", false, "rabbit_ha_queues")
	verbose := flag.Bool("v", false, "debug logs")
	flag.Parse()

	logCfg := zap.NewProductionConfig()
	if *verbose {
		logCfg.Level.SetLevel(zap.DebugLevel)
	}
	log, err := logCfg.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg.Logger = log
	cfg.ShutdownTimeout = 10 * time.Second

	methods := newMethods(cfg.Server)
	srv, err := rpc.NewServer(cfg, rpc.Dispatcher{Version: "1.3", Methods: methods.table()})
	if err != nil {
		log.Fatal("config", zap.Error(err))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := srv.Start(ctx); err != nil {
		log.Fatal("start", zap.Error(err))
	}
	fmt.Printf("READY %s\n", srv.FanoutQueue())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Stop(sctx); err != nil {
		log.Error("stop", zap.Error(err))
		os.Exit(1)
	}
}

type methods struct {
	server string
	mu     sync.Mutex
	counts map[string]int
	casts  []json.RawMessage
}

func newMethods(server string) *methods {
	return &methods{server: server, counts: map[string]int{}}
}

func arg[T any](req *rpc.Request, name string) (T, error) {
	var v T
	raw, ok := req.Args[name]
	if !ok {
		return v, errdefs.Errorf(errdefs.ErrInvalidArgument, "missing argument %s", name)
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, errdefs.Errorf(errdefs.ErrInvalidArgument, "argument %s: %v", name, err)
	}
	return v, nil
}

// kwargsError carries structured fields to the caller.
type kwargsError struct {
	error
	kwargs map[string]any
}

func (e kwargsError) RemoteKwargs() map[string]any { return e.kwargs }
func (e kwargsError) Unwrap() error                { return e.error }

func (m *methods) table() map[string]rpc.Handler {
	return map[string]rpc.Handler{
		"echo":   func(_ context.Context, req *rpc.Request) (any, error) { return req.Args, nil },
		"whoami": func(context.Context, *rpc.Request) (any, error) { return m.server, nil },
		"sleep": func(ctx context.Context, req *rpc.Request) (any, error) {
			secs, err := arg[float64](req, "seconds")
			if err != nil {
				return nil, err
			}
			select {
			case <-time.After(time.Duration(secs * float64(time.Second))):
				return map[string]any{"slept": secs}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
		"fail_with": func(_ context.Context, req *rpc.Request) (any, error) {
			class, err := arg[string](req, "class")
			if err != nil {
				return nil, err
			}
			for _, c := range errdefs.All {
				if c.RemoteName() == class {
					e := errdefs.Errorf(c, "failing as %s on request", class)
					return nil, kwargsError{e, map[string]any{"server": m.server}}
				}
			}
			return nil, errdefs.Errorf(errdefs.ErrInvalidArgument, "no class %s", class)
		},
		"count": func(_ context.Context, req *rpc.Request) (any, error) {
			key, err := arg[string](req, "key")
			if err != nil {
				return nil, err
			}
			m.mu.Lock()
			defer m.mu.Unlock()
			m.counts[key]++
			return m.counts[key], nil
		},
		"counts": func(context.Context, *rpc.Request) (any, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.counts, nil
		},
		"record": func(_ context.Context, req *rpc.Request) (any, error) {
			b, _ := json.Marshal(req.Args)
			m.mu.Lock()
			m.casts = append(m.casts, b)
			m.mu.Unlock()
			return nil, nil
		},
		"recorded": func(context.Context, *rpc.Request) (any, error) {
			m.mu.Lock()
			defer m.mu.Unlock()
			// A copy, never nil: before the first cast arrives the caller
			// must get [] (JSON null broke its loop), and the reply is
			// marshalled after the lock is released.
			return append([]json.RawMessage{}, m.casts...), nil
		},
	}
}
