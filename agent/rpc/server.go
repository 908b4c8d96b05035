package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/aos-agent/aos-agent/errdefs"
)

// Server consumes the topic, topic.server and fanout queues exactly as an
// oslo.messaging RPC server declares them and answers calls through a
// separate confirm-mode publishing connection.
//
// Ack policy (as oslo): a request is acked on receipt, before it runs, so a
// call has at most one effect even if the connection drops mid-call; the
// _unique_id cache additionally drops redeliveries of acks lost in flight.
type Server struct {
	cfg         Config
	disp        Dispatcher
	log         *zap.Logger
	dialer      *dialer
	pub         replyPublisher
	met         *metrics
	dedupe      *dedupe
	fanoutQueue string // fixed for the process lifetime, like oslo

	slots      chan struct{}
	replySlots chan struct{} // held while a reply is sent, maxPendingReplies of them
	inflight   sync.WaitGroup
	work       context.Context // handlers' context, cancelled when shutdown gives up
	stopWork   context.CancelFunc

	connected atomic.Bool
	started   atomic.Bool
	stopping  atomic.Bool
	stopCh    context.Context // done once Stop begins; ends reconnect loops
	stopNow   context.CancelFunc
	stopOnce  sync.Once
	runDone   chan struct{}
	mu        sync.Mutex
	sess      *session
}

// session is one listen connection with its consumers.
type session struct {
	conn       *amqp.Connection
	broker     *broker
	ch         *amqp.Channel
	deliveries []<-chan amqp.Delivery
	closed     chan *amqp.Error
	cancelled  chan string
}

var consumerTags = []string{"1", "2", "3"} // oslo's tags, one per queue

// replyChannels bounds replies awaiting their publisher confirm at once; with
// fewer, confirm round trips (not methods) capped throughput in bench/rpc.
const replyChannels = 32

// maxPendingReplies bounds replies being sent at once, retries included. A
// reply to a missing queue is retried for ReplyRetryTimeout (60 s), so
// unbounded, a flood of calls with bogus reply queues would pile up
// goroutines at rate × 60 s. At the bound a handler keeps its concurrency
// slot until a reply slot frees up: the consumer stops taking deliveries and
// further requests wait in the broker (basic.qos), so nothing is dropped.
// Well above replyChannels, it only bites when replies are stuck, not when
// they merely wait for a confirm.
const maxPendingReplies = 256

// replyPublisher is what a Server needs of *publisher; unit tests fake it.
type replyPublisher interface {
	publish(ctx context.Context, ex exchangeDecl, key string, mandatory bool, msg amqp.Publishing) (returned bool, err error)
	close()
}

// NewServer validates cfg; nothing touches the network before Start.
func NewServer(cfg Config, d Dispatcher) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.Topic == "" || cfg.Server == "" {
		return nil, errors.New("rpc: Topic and Server are required")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, _, ok := parseVersion(d.Version); !ok {
		return nil, fmt.Errorf("rpc: dispatcher version %q is not N.M", d.Version)
	}
	dl, err := newDialer(cfg)
	if err != nil {
		return nil, err
	}
	work, stopWork := context.WithCancel(context.Background())
	stopCh, stopNow := context.WithCancel(context.Background())
	return &Server{
		cfg: cfg, disp: d, log: cfg.Logger.Named("rpc"), dialer: dl,
		pub: newPublisher(dl, replyChannels), met: newMetrics(cfg.Registerer), dedupe: newDedupe(4096),
		fanoutQueue: cfg.Topic + "_fanout_" + newID(),
		slots:       make(chan struct{}, cfg.Concurrency),
		replySlots:  make(chan struct{}, maxPendingReplies),
		work:        work, stopWork: stopWork, stopCh: stopCh, stopNow: stopNow, runDone: make(chan struct{}),
	}, nil
}

// Connected reports whether the server is consuming (for health checks).
func (s *Server) Connected() bool { return s.connected.Load() }

// FanoutQueue is this process's fanout queue name.
func (s *Server) FanoutQueue() string { return s.fanoutQueue }

// Start connects (retrying with backoff until ctx ends), declares the
// topology, starts consuming and returns; serving and reconnecting continue
// in the background until Stop.
func (s *Server) Start(ctx context.Context) error {
	sess, err := s.connectLoop(ctx)
	if err != nil {
		return err
	}
	s.log.Info("rpc server consuming", zap.String("exchange", s.cfg.Exchange), zap.String("topic", s.cfg.Topic),
		zap.String("server", s.cfg.Server), zap.String("fanout_queue", s.fanoutQueue), zap.Strings("methods", s.disp.names()))
	s.started.Store(true)
	go s.serve(sess)
	return nil
}

// Run starts the server and serves until ctx ends, then stops gracefully.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	return s.Stop(stopCtx)
}

func (s *Server) connectLoop(ctx context.Context) (*session, error) {
	bo := backoff{min: s.cfg.ReconnectMin, max: s.cfg.ReconnectMax}
	warn := logThrottle{every: unreachableLogEvery}
	for attempt := 1; ; attempt++ {
		sess, err := s.connect()
		if err == nil {
			return sess, nil
		}
		d := bo.next()
		if warn.allow() {
			s.log.Warn("rpc broker unreachable", zap.Error(err), zap.Int("attempt", attempt), zap.Duration("retry_in", d))
		}
		if err := sleepCtx(ctx, d); err != nil {
			return nil, fmt.Errorf("rpc: connecting: %w", err)
		}
	}
}

func (s *Server) queueArgs() amqp.Table {
	args := amqp.Table{}
	if s.cfg.QuorumQueues {
		args["x-queue-type"] = "quorum"
	}
	if s.cfg.HAQueues {
		args["x-ha-policy"] = "all"
	}
	return args
}

// connect opens the listen connection and redoes oslo's declare sequence
// (§3 of the wire notes), keeping the same fanout queue name.
func (s *Server) connect() (*session, error) {
	conn, b, err := s.dialer.dial("listen")
	if err != nil {
		return nil, err
	}
	sess := &session{conn: conn, broker: b}
	fail := func(step string, err error) (*session, error) {
		_ = conn.Close()
		return nil, fmt.Errorf("rpc: %s on %s: %w", step, b.redacted, err)
	}
	if sess.ch, err = conn.Channel(); err != nil {
		return fail("open channel", err)
	}
	// Bounds unacked deliveries per consumer: requests waiting for a free
	// slot stay with the broker (or another agent) rather than in memory.
	if err := sess.ch.Qos(s.cfg.Concurrency, 0, false); err != nil {
		return fail("qos", err)
	}
	topicQueues := []string{s.cfg.Topic, s.cfg.Topic + "." + s.cfg.Server}
	for _, q := range topicQueues {
		if err := sess.ch.ExchangeDeclare(s.cfg.Exchange, "topic", s.cfg.Durable, s.cfg.AutoDelete, false, false, nil); err != nil {
			return fail("declare exchange "+s.cfg.Exchange, err)
		}
		if _, err := sess.ch.QueueDeclare(q, s.cfg.Durable, s.cfg.AutoDelete, false, false, s.queueArgs()); err != nil {
			return fail("declare queue "+q, err)
		}
		if err := sess.ch.QueueBind(q, q, s.cfg.Exchange, false, nil); err != nil {
			return fail("bind queue "+q, err)
		}
	}
	fanoutEx := s.cfg.Topic + "_fanout"
	if err := sess.ch.ExchangeDeclare(fanoutEx, "fanout", false, true, false, false, nil); err != nil {
		return fail("declare exchange "+fanoutEx, err)
	}
	// oslo marks the fanout queue HA too, but never quorum (it expires).
	expires := amqp.Table{"x-expires": int32(s.cfg.TransientQueuesTTL.Milliseconds())}
	if s.cfg.HAQueues {
		expires["x-ha-policy"] = "all"
	}
	if _, err := sess.ch.QueueDeclare(s.fanoutQueue, false, false, false, false, expires); err != nil {
		return fail("declare queue "+s.fanoutQueue, err)
	}
	if err := sess.ch.QueueBind(s.fanoutQueue, s.cfg.Topic, fanoutEx, false, nil); err != nil {
		return fail("bind fanout queue", err)
	}
	for i, q := range append(topicQueues, s.fanoutQueue) {
		d, err := sess.ch.Consume(q, consumerTags[i], false, false, false, false, nil)
		if err != nil {
			return fail("consume "+q, err)
		}
		sess.deliveries = append(sess.deliveries, d)
	}
	// Buffered and re-registered per session: amqp091 blocks on unread notifications.
	sess.closed = conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := sess.ch.NotifyClose(make(chan *amqp.Error, 1))
	sess.cancelled = sess.ch.NotifyCancel(make(chan string, len(consumerTags)))
	go func() {
		// A channel error (e.g. a bad ack) kills only the channel: treat it
		// like a connection loss so the whole topology is redone.
		if e, ok := <-chClosed; ok {
			s.log.Warn("rpc channel closed by broker", zap.String("reason", e.Reason), zap.Int("code", e.Code))
			_ = conn.Close()
		}
	}()
	s.mu.Lock()
	s.sess = sess
	s.mu.Unlock()
	s.connected.Store(true)
	s.met.connected.Set(1)
	return sess, nil
}

// serve consumes sessions one after another until Stop.
func (s *Server) serve(sess *session) {
	defer close(s.runDone)
	for {
		reason := s.consume(sess)
		s.connected.Store(false)
		s.met.connected.Set(0)
		if s.stopping.Load() {
			return // Stop still needs the channel to delete the fanout queue
		}
		_ = sess.conn.Close()
		s.dialer.lost(sess.broker)
		s.log.Warn("rpc connection lost, reconnecting", zap.String("reason", reason), zap.String("broker", sess.broker.redacted))
		s.met.reconnects.Inc()
		next, err := s.connectLoop(s.stopCh)
		if err != nil {
			return
		}
		if s.stopping.Load() {
			_ = next.conn.Close()
			return
		}
		s.log.Info("rpc reconnected", zap.String("fanout_queue", s.fanoutQueue), zap.String("broker", next.broker.redacted))
		sess = next
	}
}

// consume dispatches deliveries until the session ends and says why.
func (s *Server) consume(sess *session) string {
	merged := make(chan amqp.Delivery)
	done := make(chan struct{})
	var readers sync.WaitGroup
	for _, d := range sess.deliveries {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case msg, ok := <-d:
					if !ok {
						return
					}
					select {
					case merged <- msg:
					case <-done:
						return
					}
				case <-done:
					return
				}
			}
		}()
	}
	defer func() { close(done); readers.Wait() }()
	allClosed := make(chan struct{})
	go func() { readers.Wait(); close(allClosed) }()
	for {
		select {
		case d := <-merged:
			s.slots <- struct{}{}
			s.inflight.Add(1)
			go s.handle(d)
		case e, ok := <-sess.closed:
			if ok {
				return e.Reason
			}
			return "connection closed"
		case tag := <-sess.cancelled:
			// The broker cancelled a consumer (its queue was deleted):
			// redeclare everything by starting a new session.
			return "consumer " + tag + " cancelled by broker"
		case <-allClosed:
			return "consumers stopped"
		}
	}
}

// handle runs one delivery; it owns a concurrency slot until the method
// returns and sends the reply after releasing it, so a missing reply queue
// holds back other requests only once maxPendingReplies replies are stuck.
// checkOrigin accepts a request only from the exchange its callers publish
// to: the control exchange, or the topic's fanout exchange for the methods
// allowed there. The broker stamps each delivery with its exchange, so a
// request another agent's user sends straight to a queue through the
// default exchange (which it may publish to: replies go that way) is
// refused, whatever it claims.
func (s *Server) checkOrigin(exchange, method string) error {
	switch exchange {
	case s.cfg.Exchange:
		return nil
	case s.cfg.Topic + "_fanout":
		if s.disp.Fanout == nil || slices.Contains(s.disp.Fanout, method) {
			return nil
		}
		return &dispatcherError{class: "NoSuchMethod", msg: fmt.Sprintf("method %s is not accepted as a fanout cast", method)}
	}
	return &dispatcherError{class: "NoSuchMethod", msg: fmt.Sprintf("requests are accepted through exchange %s only, not %q", s.cfg.Exchange, exchange)}
}

func (s *Server) handle(d amqp.Delivery) {
	defer s.inflight.Done()
	released := false
	release := func() {
		if !released {
			released = true
			<-s.slots
		}
	}
	defer release()

	if len(d.Body) > s.cfg.MaxBodyBytes {
		s.refuseOversized(d, release)
		return
	}
	msg, perr := unwrapEnvelope(d.Body)
	if msg == nil {
		s.log.Warn("rpc dropping unparseable message", zap.Error(perr), zap.Int("bytes", len(d.Body)), zap.String("queue_key", d.RoutingKey))
		s.met.requests.WithLabelValues("unknown", "malformed").Inc()
		_ = d.Reject(false)
		return
	}
	uniqueID := stringField(msg, "_unique_id")
	if !s.dedupe.add(uniqueID) {
		_ = d.Ack(false)
		s.log.Info("rpc ignoring duplicate message", zap.String("unique_id", uniqueID))
		s.met.requests.WithLabelValues("unknown", "duplicate").Inc()
		return
	}
	if err := d.Ack(false); err != nil {
		s.dedupe.forget(uniqueID) // the broker will redeliver; let that copy run
		s.log.Warn("rpc ack failed, not dispatching", zap.Error(err))
		return
	}

	req, replyQ, monitor, err := decodeRequest(msg)
	if perr != nil {
		err = errdefs.Wrap(errdefs.ErrInvalidArgument, perr, perr.Error())
	}
	var h Handler
	if err == nil {
		h, err = s.disp.lookup(req)
	}
	isCall := req.MsgID != "" && replyQ != ""
	fields := []zap.Field{zap.String("method", req.Method), zap.String("msg_id", req.MsgID), zap.Any("context", req.LogContext())}
	if err == nil {
		if err = s.checkOrigin(d.Exchange, req.Method); err != nil {
			s.log.Warn("rpc refusing request", append(fields, zap.String("exchange", d.Exchange), zap.Error(err))...)
			s.met.requests.WithLabelValues(s.methodLabel(req.Method), "refused").Inc()
			s.finish(release, isCall, req.MsgID, replyQ, nil, err)
			return
		}
	}
	if err != nil {
		s.log.Warn("rpc rejecting request", append(fields, zap.Error(err), zap.Bool("answered", isCall))...)
		s.met.requests.WithLabelValues(s.methodLabel(req.Method), "malformed").Inc()
		s.finish(release, isCall, req.MsgID, replyQ, nil, err)
		return
	}

	stopMonitor := func() {}
	if isCall && monitor >= 2 {
		stopMonitor = s.callMonitor(req.MsgID, replyQ, time.Duration(monitor)*time.Second/2)
	}
	start := time.Now()
	result, err := s.invoke(h, req)
	stopMonitor()
	s.met.duration.WithLabelValues(req.Method).Observe(time.Since(start).Seconds())
	outcome := "ok"
	if err != nil {
		outcome = "error"
		// The one log line of a failed call (the API layer logs none).
		s.log.Warn("rpc method failed", append(fields, zap.Error(err), zap.String("class", errdefs.ClassOf(err).RemoteName()))...)
	} else {
		s.log.Debug("rpc method done", append(fields, zap.Duration("took", time.Since(start)))...)
	}
	s.met.requests.WithLabelValues(req.Method, outcome).Inc()
	s.finish(release, isCall, req.MsgID, replyQ, result, err)
}

// finish releases the concurrency slot and, for a call, sends the reply. The
// slot is released only once a reply slot is taken, which stops the consumer
// while maxPendingReplies replies are in flight.
func (s *Server) finish(release func(), isCall bool, msgID, replyQ string, result any, err error) {
	if !isCall {
		release()
		return
	}
	s.replySlots <- struct{}{}
	defer func() { <-s.replySlots }()
	release()
	s.reply(msgID, replyQ, result, err)
}

// invoke runs a handler under the request deadline, turning a panic into an
// error so one bad method cannot take the agent down. The deadline ends the
// handler's commands and waits; its slot is released only when it returns.
func (s *Server) invoke(h Handler, req *Request) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("rpc method panicked", zap.String("method", req.Method), zap.Any("panic", p), zap.Stack("stack"))
			err = errdefs.Errorf(errdefs.ErrUnknown, "internal error in %s", req.Method)
		}
	}()
	ctx, cancel := context.WithTimeout(s.work, s.cfg.RequestTimeout)
	defer cancel()
	return h(ctx, req)
}

func (s *Server) methodLabel(m string) string {
	if _, ok := s.disp.Methods[m]; ok {
		return m
	}
	return "unknown"
}

// refuseOversized answers a body over MaxBodyBytes with a failure (when it
// is a call) after reading only its ids.
func (s *Server) refuseOversized(d amqp.Delivery, release func()) {
	s.met.requests.WithLabelValues("unknown", "malformed").Inc()
	ids, ok := peekIDs(d.Body)
	if !ok {
		s.log.Warn("rpc dropping oversized unparseable message", zap.Int("bytes", len(d.Body)))
		_ = d.Reject(false)
		return
	}
	if !s.dedupe.add(ids.UniqueID) {
		_ = d.Ack(false)
		return
	}
	if err := d.Ack(false); err != nil {
		s.dedupe.forget(ids.UniqueID)
		return
	}
	err := errdefs.Errorf(errdefs.ErrInvalidArgument, "malformed message: body of %d bytes exceeds %d", len(d.Body), s.cfg.MaxBodyBytes)
	isCall := ids.MsgID != "" && ids.ReplyQ != ""
	s.log.Warn("rpc rejecting request", zap.String("msg_id", ids.MsgID), zap.Error(err), zap.Bool("answered", isCall))
	s.finish(release, isCall, ids.MsgID, ids.ReplyQ, nil, err)
}

// callMonitor sends ending:false heartbeats while a method runs, which keeps
// a caller that set call_monitor_timeout waiting.
func (s *Server) callMonitor(msgID, replyQ string, every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				body, _ := envelope(reply{Result: json.RawMessage("null"), MsgID: msgID, UniqueID: newID()})
				ctx, cancel := context.WithTimeout(context.Background(), every)
				_, err := s.pub.publish(ctx, exchangeDecl{}, replyQ, true, properties(body, 0))
				cancel()
				if err != nil {
					s.log.Warn("rpc call-monitor heartbeat failed", zap.String("msg_id", msgID), zap.Error(err))
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// reply sends the single final reply of a call. A missing reply queue is
// retried every 250 ms (oslo does the same for 60 s), then dropped.
func (s *Server) reply(msgID, replyQ string, result any, callErr error) {
	r := reply{Result: json.RawMessage("null"), Ending: true, MsgID: msgID, UniqueID: newID()}
	if callErr != nil {
		f := encodeFailure(callErr, errdefs.ClassOf(callErr).RemoteName(), agentModule)
		r.Failure = &f
	} else if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			f := encodeFailure(errdefs.Wrap(errdefs.ErrUnknown, err, "result not serialisable: "+err.Error()), errdefs.ErrUnknown.RemoteName(), agentModule)
			r.Failure = &f
		} else {
			r.Result = b
		}
	}
	body, err := envelope(r)
	if err != nil {
		s.log.Error("rpc cannot encode reply", zap.String("msg_id", msgID), zap.Error(err))
		return
	}
	deadline := time.Now().Add(s.cfg.ReplyRetryTimeout)
	var lastErr error
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		returned, err := s.pub.publish(ctx, exchangeDecl{}, replyQ, true, properties(body, 0))
		cancel()
		switch {
		case err == nil && !returned:
			return
		case err == nil:
			lastErr = errors.New("reply queue does not exist")
		default:
			lastErr = err
		}
		if attempt == 0 {
			s.log.Info("rpc reply not delivered, retrying", zap.String("msg_id", msgID), zap.String("reply_q", replyQ), zap.Error(lastErr))
		}
		time.Sleep(250 * time.Millisecond)
	}
	s.met.dropped.Inc()
	s.log.Warn("rpc dropping reply", zap.String("msg_id", msgID), zap.String("reply_q", replyQ), zap.Error(lastErr))
}

// Stop cancels the consumers, lets in-flight methods finish until ctx ends
// (then cancels their context), deletes this process's fanout queue and
// closes both connections.
func (s *Server) Stop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		s.stopNow()
		s.mu.Lock()
		sess := s.sess
		s.mu.Unlock()
		if sess != nil {
			for _, tag := range consumerTags {
				_ = sess.ch.Cancel(tag, false)
			}
		}
		finished := make(chan struct{})
		go func() { s.inflight.Wait(); close(finished) }()
		select {
		case <-finished:
		case <-ctx.Done():
			s.log.Warn("rpc shutdown deadline reached, cancelling in-flight methods")
			s.stopWork()
			<-finished
			err = ctx.Err()
		}
		s.stopWork()
		if sess != nil {
			if _, derr := sess.ch.QueueDelete(s.fanoutQueue, false, false, false); derr != nil {
				s.log.Info("rpc could not delete fanout queue (it expires on its own)", zap.Error(derr))
			}
			_ = sess.conn.Close()
		}
		if s.started.Load() {
			<-s.runDone
		}
		s.pub.close()
		s.log.Info("rpc server stopped")
	})
	return err
}
