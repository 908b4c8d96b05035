package rpc

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
)

// stuckPublisher holds every publish until release is closed, like replies
// retried to a reply queue that never appears.
type stuckPublisher struct {
	release chan struct{}

	mu                  sync.Mutex
	active, max, served int
}

func (p *stuckPublisher) publish(ctx context.Context, _ exchangeDecl, _ string, _ bool, _ amqp.Publishing) (bool, error) {
	p.mu.Lock()
	p.active++
	p.max = max(p.max, p.active)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.active--
		p.served++
		p.mu.Unlock()
	}()
	select {
	case <-p.release:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (p *stuckPublisher) close() {}

func (p *stuckPublisher) counts() (active, max, served int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active, p.max, p.served
}

// acker counts acks of fake deliveries.
type acker struct {
	mu   sync.Mutex
	acks int
}

func (a *acker) Ack(uint64, bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acks++
	return nil
}
func (a *acker) Nack(uint64, bool, bool) error { return nil }
func (a *acker) Reject(uint64, bool) error     { return nil }

func (a *acker) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acks
}

func TestPendingRepliesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const concurrency = 4
		srv, err := NewServer(Config{URL: "rabbit://h/", Topic: "t", Server: "s", Concurrency: concurrency},
			Dispatcher{Version: "1.0", Methods: map[string]Handler{"ping": func(context.Context, *Request) (any, error) { return "pong", nil }}})
		if err != nil {
			t.Fatal(err)
		}
		pub := &stuckPublisher{release: make(chan struct{})}
		srv.pub = pub
		ack := &acker{}
		deliveries := make(chan amqp.Delivery)
		sess := &session{deliveries: []<-chan amqp.Delivery{deliveries}, closed: make(chan *amqp.Error), cancelled: make(chan string)}
		consumed := make(chan string)
		go func() { consumed <- srv.consume(sess) }()

		calls := maxPendingReplies + 2*concurrency + 10 // more than the bound and all slots
		bodies := make([][]byte, calls)
		for i := range bodies {
			if bodies[i], err = envelope(map[string]any{"method": "ping", "args": map[string]any{},
				"_unique_id": newID(), "_msg_id": newID(), "_reply_q": "reply_gone"}); err != nil {
				t.Fatal(err)
			}
		}
		go func() {
			defer close(deliveries)
			for _, body := range bodies {
				deliveries <- amqp.Delivery{Acknowledger: ack, Body: body, Exchange: srv.cfg.Exchange}
			}
		}()

		synctest.Wait() // every goroutine is blocked: replies stuck, the rest waiting
		if active, _, _ := pub.counts(); active != maxPendingReplies {
			t.Errorf("replies being sent while all are stuck: got %d, want the bound %d", active, maxPendingReplies)
		}
		// Back-pressure: beyond the stuck replies, only the handlers holding
		// a concurrency slot have taken (and acked) a delivery.
		if got, want := ack.count(), maxPendingReplies+concurrency; got != want {
			t.Errorf("deliveries taken while replies are stuck: got %d, want %d", got, want)
		}

		close(pub.release)
		if reason := <-consumed; reason != "consumers stopped" {
			t.Errorf("consume ended with %q, want %q", reason, "consumers stopped")
		}
		srv.inflight.Wait()
		{
			_, most, served := pub.counts()
			if most > maxPendingReplies {
				t.Errorf("replies: most = %v, want <= maxPendingReplies", most)
			}
			if served != calls {
				t.Errorf("replies: served = %v, want %v", served, calls)
			}
		}
	})
}

// Requests count only when they come through the exchange their callers
// publish to: a call another agent's user sends straight to the queue
// through the default exchange is answered with a refusal and never runs;
// through the fanout exchange only the methods allowed there run.
func TestRequestsOnlyThroughTheirExchange(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ran := map[string]int{}
		var mu sync.Mutex
		handler := func(name string) Handler {
			return func(context.Context, *Request) (any, error) {
				mu.Lock()
				defer mu.Unlock()
				ran[name]++
				return nil, nil
			}
		}
		srv, err := NewServer(Config{URL: "rabbit://h/", Exchange: "openstack", Topic: "aos-agent", Server: "s"},
			Dispatcher{Version: "1.0", Methods: map[string]Handler{"delete_volume": handler("delete_volume"), "refresh_volume": handler("refresh_volume")},
				Fanout: []string{"refresh_volume"}})
		if err != nil {
			t.Fatal(err)
		}
		pub := &stuckPublisher{release: make(chan struct{})}
		close(pub.release)
		srv.pub = pub
		deliveries := make(chan amqp.Delivery)
		sess := &session{deliveries: []<-chan amqp.Delivery{deliveries}, closed: make(chan *amqp.Error), cancelled: make(chan string)}
		consumed := make(chan string)
		go func() { consumed <- srv.consume(sess) }()
		send := func(exchange, method string, call bool) {
			msg := map[string]any{"method": method, "args": map[string]any{}, "_unique_id": newID()}
			if call {
				msg["_msg_id"], msg["_reply_q"] = newID(), "reply_q"
			}
			body, err := envelope(msg)
			if err != nil {
				t.Fatal(err)
			}
			deliveries <- amqp.Delivery{Acknowledger: &acker{}, Body: body, Exchange: exchange}
			synctest.Wait()
		}
		send("", "delete_volume", true)                   // another agent, through the default exchange
		send("aos-agent_fanout", "delete_volume", false)  // a fanout cast of a method not allowed there
		send("aos-agent_fanout", "refresh_volume", false) // the refresh broadcast
		send("openstack", "delete_volume", true)          // cinder
		close(deliveries)
		<-consumed
		srv.inflight.Wait()
		if ran["delete_volume"] != 1 {
			t.Fatalf("handlers ran: ran[\"delete_volume\"] = %v, want 1", ran["delete_volume"])
		}
		if ran["refresh_volume"] != 1 {
			t.Fatalf("handlers ran: ran[\"refresh_volume\"] = %v, want 1", ran["refresh_volume"])
		}
		if _, _, served := pub.counts(); served != 2 {
			t.Errorf("replies: got %d, want 2 (the refusal of the default-exchange call, and cinder's call)", served)
		}
		if got := testutil.ToFloat64(srv.met.requests.WithLabelValues("delete_volume", "refused")); got != 2 {
			t.Errorf("refused requests counted: got %v, want 2", got)
		}
	})
}
