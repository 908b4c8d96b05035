package rpc

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// oslo sends no deadline with a call: a handler that would wait forever is
// ended by the request deadline and gives its concurrency slot back.
func TestRequestDeadlineFreesTheSlot(t *testing.T) {
	for _, c := range []struct {
		name       string
		configured time.Duration
		want       time.Duration
	}{
		{"default", 0, 2 * time.Hour},
		{"configured", 10 * time.Minute, 10 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				deadlines := make(chan time.Time, 1)
				hang := func(ctx context.Context, _ *Request) (any, error) {
					if d, ok := ctx.Deadline(); ok {
						deadlines <- d
					}
					<-ctx.Done()
					return nil, ctx.Err()
				}
				srv, err := NewServer(Config{URL: "rabbit://h/", Topic: "t", Server: "s", RequestTimeout: c.configured},
					Dispatcher{Version: "1.0", Methods: map[string]Handler{"clone_volume": hang}})
				if err != nil {
					t.Fatal(err)
				}
				pub := &stuckPublisher{release: make(chan struct{})}
				close(pub.release) // replies go out at once
				srv.pub = pub
				deliveries := make(chan amqp.Delivery)
				sess := &session{deliveries: []<-chan amqp.Delivery{deliveries}, closed: make(chan *amqp.Error), cancelled: make(chan string)}
				consumed := make(chan string)
				go func() { consumed <- srv.consume(sess) }()
				body, err := envelope(map[string]any{"method": "clone_volume", "args": map[string]any{},
					"_unique_id": newID(), "_msg_id": newID(), "_reply_q": "reply_q"})
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				deliveries <- amqp.Delivery{Acknowledger: &acker{}, Body: body, Exchange: srv.cfg.Exchange}
				synctest.Wait()
				if got := len(srv.slots); got != 1 {
					t.Fatalf("slots taken while the handler runs: got %d, want 1", got)
				}

				time.Sleep(c.want)
				synctest.Wait()
				select {
				case d := <-deadlines:
					if got := d.Sub(start); got != c.want {
						t.Errorf("handler deadline: got start+%v, want start+%v", got, c.want)
					}
				default:
					t.Error("handler context has no deadline")
				}
				if got := len(srv.slots); got != 0 {
					t.Errorf("slots taken after the request deadline: got %d, want 0", got)
				}
				if _, _, served := pub.counts(); served != 1 {
					t.Errorf("replies sent: got %d, want 1 (the deadline failure)", served)
				}

				srv.stopWork() // ends a handler the deadline did not
				close(deliveries)
				<-consumed
				srv.inflight.Wait()
			})
		})
	}
}
