package rpc

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

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
				deliveries <- amqp.Delivery{Acknowledger: ack, Body: body}
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
		if _, most, served := pub.counts(); most > maxPendingReplies || served != calls {
			t.Errorf("replies: got at most %d at once and %d sent, want at most %d at once and all %d sent", most, served, maxPendingReplies, calls)
		}
	})
}
