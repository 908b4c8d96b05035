package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// dialer connects to the brokers of one transport URL in turn.
type dialer struct {
	brokers []broker
	base    amqp.Config
	mu      sync.Mutex
	next    int
}

// dialTimeout bounds one TCP connect and AMQP handshake. amqp091's default is
// 30 s: a broker whose host is gone (no RST, packets dropped) would hold a
// failover that long before the next host in the URL is tried.
const dialTimeout = 5 * time.Second

func newDialer(cfg Config) (*dialer, error) {
	brokers, err := parseTransportURL(cfg.URL, cfg.TLS)
	if err != nil {
		return nil, err
	}
	var tc *tls.Config
	if brokers[0].tls { // all hosts of a URL share its scheme
		if tc, err = cfg.tlsConfig(); err != nil {
			return nil, err
		}
	} else if set := cfg.tlsOptions(); len(set) > 0 {
		return nil, &TLSOffError{Fields: set}
	}
	base := amqp.Config{Heartbeat: cfg.HeartbeatInterval, TLSClientConfig: tc, Locale: "en_US", Dial: amqp.DefaultDial(dialTimeout)}
	return &dialer{brokers: brokers, base: base}, nil
}

// dial tries every broker once without pausing, starting with the last one
// that worked, and names the connection like oslo does
// (<program>:<pid>:<purpose>). It returns the broker it reached, for lost.
func (d *dialer) dial(purpose string) (*amqp.Connection, *broker, error) {
	d.mu.Lock()
	start := d.next
	d.mu.Unlock()
	var errs []error
	for i := range d.brokers {
		idx := (start + i) % len(d.brokers)
		b := &d.brokers[idx]
		cfg := d.base
		cfg.Vhost = b.vhost
		if cfg.TLSClientConfig != nil {
			cfg.TLSClientConfig = cfg.TLSClientConfig.Clone()
		}
		cfg.Properties = amqp.NewConnectionProperties()
		cfg.Properties.SetClientConnectionName(fmt.Sprintf("%s:%d:%s", filepath.Base(os.Args[0]), os.Getpid(), purpose))
		conn, err := amqp.DialConfig(b.url, cfg)
		if err == nil {
			d.mu.Lock()
			d.next = idx
			d.mu.Unlock()
			return conn, b, nil
		}
		// amqp091 errors do not echo the URL, but be sure no secret leaks.
		errs = append(errs, fmt.Errorf("%s: %s", b.redacted, RedactURL(err.Error())))
	}
	return nil, nil, fmt.Errorf("rpc: no broker reachable: %w", errors.Join(errs...))
}

// lost says a connection to b broke: the next dial starts with the broker
// after it, so a node that died (or hangs in a partition) is tried last
// rather than first, as kombu's round-robin failover does.
func (d *dialer) lost(b *broker) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if &d.brokers[d.next] == b {
		d.next = (d.next + 1) % len(d.brokers)
	}
}

// backoff yields reconnect delays: min doubling up to max, each drawn
// uniformly from its upper half so a hundred agents that lost one broker do
// not come back to it in the same instant.
type backoff struct {
	min, max, cur time.Duration
	rand          func(n int64) int64 // rand.Int64N; a fixed stub in tests
}

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	r := b.rand
	if r == nil {
		r = rand.Int64N
	}
	half := b.cur / 2
	return b.cur - half + time.Duration(r(int64(half)+1))
}

// logThrottle lets a retry loop's warning through when it starts and then
// once per every: attempts come about once a second during an outage.
type logThrottle struct {
	every time.Duration
	last  time.Time
}

func (t *logThrottle) allow() bool {
	if time.Since(t.last) < t.every {
		return false
	}
	t.last = time.Now()
	return true
}

// unreachableLogEvery spaces the warnings of a long broker outage.
const unreachableLogEvery = 30 * time.Second

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exchangeDecl is an exchange a publisher declares before its first publish
// to it on a channel, as oslo's client does.
type exchangeDecl struct {
	name, kind          string
	durable, autoDelete bool
}

// publisher owns a connection used only for publishing (oslo keeps publishing
// off the consuming connection) with a small pool of confirm channels. Each
// channel carries one publish at a time, so a basic.return seen before the
// confirm belongs to that publish.
type publisher struct {
	dialer *dialer
	pool   chan *pubChan
	mu     sync.Mutex
	conn   *amqp.Connection
}

type pubChan struct {
	ch       *amqp.Channel
	returns  chan amqp.Return
	declared map[string]bool
}

func newPublisher(d *dialer, channels int) *publisher {
	p := &publisher{dialer: d, pool: make(chan *pubChan, channels)}
	for range channels {
		p.pool <- &pubChan{}
	}
	return p
}

var errNacked = errors.New("rpc: broker nacked the publish")

// publish sends one message and waits for the broker's confirm. returned is
// true when a mandatory message had no queue to go to.
func (p *publisher) publish(ctx context.Context, ex exchangeDecl, key string, mandatory bool, msg amqp.Publishing) (returned bool, err error) {
	var pc *pubChan
	select {
	case pc = <-p.pool:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { p.pool <- pc }()
	if pc.ch == nil || pc.ch.IsClosed() {
		if err := p.open(pc); err != nil {
			return false, err
		}
	}
	fail := func(err error) (bool, error) {
		_ = pc.ch.Close() // confirm state unknown: start afresh next time
		pc.ch = nil
		return false, err
	}
	if ex.name != "" && !pc.declared[ex.name] {
		if err := pc.ch.ExchangeDeclare(ex.name, ex.kind, ex.durable, ex.autoDelete, false, false, nil); err != nil {
			return fail(fmt.Errorf("rpc: declare exchange %s: %w", ex.name, err))
		}
		pc.declared[ex.name] = true
	}
	dc, err := pc.ch.PublishWithDeferredConfirmWithContext(ctx, ex.name, key, mandatory, false, msg)
	if err != nil {
		return fail(fmt.Errorf("rpc: publish: %w", err))
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		return fail(fmt.Errorf("rpc: publish confirm: %w", err))
	}
	if !acked {
		return false, errNacked
	}
	select {
	case _, ok := <-pc.returns:
		return ok, nil
	default:
		return false, nil
	}
}

func (p *publisher) open(pc *pubChan) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		conn, _, err := p.dialer.dial("publish")
		if err != nil {
			return err
		}
		p.conn = conn
	}
	ch, err := p.conn.Channel()
	if err != nil {
		_ = p.conn.Close()
		p.conn = nil
		return fmt.Errorf("rpc: open publish channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return fmt.Errorf("rpc: enable confirms: %w", err)
	}
	pc.ch, pc.returns, pc.declared = ch, ch.NotifyReturn(make(chan amqp.Return, 1)), map[string]bool{}
	return nil
}

func (p *publisher) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn = nil
	}
}

// properties are oslo's basic properties: JSON, UTF-8, empty headers,
// persistent; expiration only on calls.
func properties(body []byte, expiration time.Duration) amqp.Publishing {
	pub := amqp.Publishing{ContentType: contentType, ContentEncoding: contentEncoding, Headers: amqp.Table{}, DeliveryMode: amqp.Persistent, Body: body}
	if expiration > 0 {
		pub.Expiration = fmt.Sprint(expiration.Milliseconds())
	}
	return pub
}
