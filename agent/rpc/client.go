package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/aos-agent/aos-agent/errdefs"
)

// ErrTimeout is returned by Call when no final reply came in time, the same
// condition as oslo's MessagingTimeout.
var ErrTimeout = errors.New("rpc: timed out waiting for a reply")

// RemoteError is a failure raised by the remote method. It unwraps to the
// errdefs class of the same remote name, so errors.Is(err, errdefs.ErrX)
// works across the wire.
type RemoteError struct {
	Class     string
	Module    string
	Message   string
	Traceback []string
	Kwargs    map[string]any
}

func (e *RemoteError) Error() string { return e.Class + ": " + e.Message }

func (e *RemoteError) Unwrap() error {
	for _, c := range errdefs.All {
		if c.RemoteName() == e.Class {
			return c
		}
	}
	return nil
}

// Client calls and casts to oslo RPC servers (ours or Python's) the way
// oslo's RPCClient does: one reply_<hex> queue per client, replies matched by
// _msg_id, confirm-mode publishing on its own connection.
type Client struct {
	cfg    Config
	log    *zap.Logger
	dialer *dialer
	pub    *publisher
	replyQ string

	mu        sync.Mutex
	conn      *amqp.Connection // reply-queue consumer; nil until the first call
	consuming bool             // a consumer is reading the reply queue
	closed    bool
	done      chan struct{} // closed by Close: stops the consumer's recovery
	pending   map[string]chan reply
}

type callerContextKey struct{}

// WithCallerContext attaches an oslo request context to ctx: Call, Cast and
// FanoutCast send each key as _context_<key> (request_id, user_id, ...), the
// way a Python RPCClient sends its context. Without one, a fresh request_id
// is sent.
func WithCallerContext(ctx context.Context, callerCtx map[string]any) context.Context {
	return context.WithValue(ctx, callerContextKey{}, callerCtx)
}

// NewClient validates cfg; it connects lazily.
func NewClient(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if cfg.Topic == "" {
		return nil, errors.New("rpc: Topic is required")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dl, err := newDialer(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{cfg: cfg, log: cfg.Logger.Named("rpc-client"), dialer: dl, pub: newPublisher(dl, 8),
		replyQ: "reply_" + newID(), done: make(chan struct{}), pending: map[string]chan reply{}}, nil
}

func (c *Client) topicExchange() exchangeDecl {
	return exchangeDecl{name: c.cfg.Exchange, kind: "topic", durable: c.cfg.Durable, autoDelete: c.cfg.AutoDelete}
}

// request builds the message; monitor > 0 asks the server for call-monitor
// heartbeats (_timeout, whole seconds like oslo's call_monitor_timeout).
func (c *Client) request(ctx context.Context, method string, args any, call bool, monitor time.Duration) (msgID string, body []byte, err error) {
	rawArgs, err := json.Marshal(args)
	if err != nil {
		return "", nil, fmt.Errorf("rpc: args of %s: %w", method, err)
	}
	if string(rawArgs) == "null" {
		rawArgs = []byte("{}")
	}
	m := map[string]any{"method": method, "args": json.RawMessage(rawArgs), "_unique_id": newID(),
		contextPrefix + "request_id": "req-" + newID()}
	if callerCtx, ok := ctx.Value(callerContextKey{}).(map[string]any); ok {
		for k, v := range callerCtx {
			m[contextPrefix+k] = v
		}
	}
	if call {
		msgID = newID()
		m["_msg_id"], m["_reply_q"], m["_timeout"] = msgID, c.replyQ, nil
		if secs := int((monitor + time.Second - 1) / time.Second); secs > 0 {
			m["_timeout"] = secs
		}
	}
	body, err = envelope(m)
	return msgID, body, err
}

func (c *Client) routingKey(server string) string {
	if server == "" {
		return c.cfg.Topic
	}
	return c.cfg.Topic + "." + server
}

// Call invokes method on server ("" = any server of the topic) and returns
// the raw JSON result. Remote failures are *RemoteError.
//
// timeout is also sent as the call-monitor timeout (_timeout): the server
// sends a heartbeat every timeout/2 while the method runs, and each one
// grants the call another timeout, so a long method stays alive while a dead
// server is noticed within timeout. Silence for timeout is ErrTimeout; ctx
// bounds the whole call.
func (c *Client) Call(ctx context.Context, server, method string, args any, timeout time.Duration) (json.RawMessage, error) {
	if timeout <= 0 {
		timeout = 60 * time.Second // oslo's rpc_response_timeout
	}
	if err := c.ensureReplyQueueWithin(ctx, timeout); err != nil {
		return nil, err
	}
	msgID, body, err := c.request(ctx, method, args, true, timeout)
	if err != nil {
		return nil, err
	}
	replies := make(chan reply, 4)
	c.mu.Lock()
	c.pending[msgID] = replies
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, msgID)
		c.mu.Unlock()
	}()
	pubCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := c.pub.publish(pubCtx, c.topicExchange(), c.routingKey(server), false, properties(body, timeout)); err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("%w to %s: sending took longer than %s", ErrTimeout, method, timeout)
		}
		return nil, fmt.Errorf("rpc: sending %s: %w", method, err)
	}
	silence := time.NewTimer(timeout)
	defer silence.Stop()
	var result json.RawMessage
	for {
		select {
		case r := <-replies:
			silence.Reset(timeout)
			if r.Failure != nil {
				return nil, decodeFailure(*r.Failure)
			}
			if len(r.Result) > 0 && string(r.Result) != "null" {
				result = r.Result // the legacy two-part form sends the result before the ending
			}
			if r.Ending {
				if result == nil {
					result = json.RawMessage("null")
				}
				return result, nil
			}
		case <-silence.C:
			return nil, fmt.Errorf("%w to %s (msg_id %s): nothing heard for %s", ErrTimeout, method, msgID, timeout)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w to %s (msg_id %s): %v", ErrTimeout, method, msgID, ctx.Err())
			}
			return nil, ctx.Err()
		}
	}
}

// Cast sends method to server ("" = one server of the topic) without a reply.
func (c *Client) Cast(ctx context.Context, server, method string, args any) error {
	_, body, err := c.request(ctx, method, args, false, 0)
	if err != nil {
		return err
	}
	_, err = c.pub.publish(ctx, c.topicExchange(), c.routingKey(server), false, properties(body, 0))
	return err
}

// FanoutCast sends method to every server of the topic.
func (c *Client) FanoutCast(ctx context.Context, method string, args any) error {
	_, body, err := c.request(ctx, method, args, false, 0)
	if err != nil {
		return err
	}
	ex := exchangeDecl{name: c.cfg.Topic + "_fanout", kind: "fanout", autoDelete: true}
	_, err = c.pub.publish(ctx, ex, "", false, properties(body, 0))
	return err
}

// FanoutReply is one server's answer to a FanoutCall: a result, or Err
// (a *RemoteError) when its method failed. Received is when it arrived.
type FanoutReply struct {
	Result   json.RawMessage
	Err      error
	Received time.Time
}

// maxFanoutReplies bounds the replies one FanoutCall buffers; more servers
// than this answer a fanout call only in a cluster far beyond one VG's.
const maxFanoutReplies = 4096

// FanoutCall sends method to every server of the topic as one fanout
// message that asks for replies, and gathers those arriving within wait:
// one message out and one back per server, O(N) for N servers. A server
// that did not answer in time is absent from replies: only the caller
// knows whom it expected. sent is when the request left, for the caller's
// round-trip arithmetic.
func (c *Client) FanoutCall(ctx context.Context, method string, args any, wait time.Duration) (sent time.Time, replies []FanoutReply, err error) {
	if err := c.ensureReplyQueueWithin(ctx, wait); err != nil {
		return time.Time{}, nil, err
	}
	msgID, body, err := c.request(ctx, method, args, true, 0)
	if err != nil {
		return time.Time{}, nil, err
	}
	ch := make(chan reply, maxFanoutReplies)
	c.mu.Lock()
	c.pending[msgID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, msgID)
		c.mu.Unlock()
	}()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	pubCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	sent = time.Now()
	ex := exchangeDecl{name: c.cfg.Topic + "_fanout", kind: "fanout", autoDelete: true}
	if _, err := c.pub.publish(pubCtx, ex, "", false, properties(body, wait)); err != nil {
		return sent, nil, fmt.Errorf("rpc: sending %s: %w", method, err)
	}
	for {
		select {
		case r := <-ch:
			switch {
			case r.Failure != nil:
				replies = append(replies, FanoutReply{Err: decodeFailure(*r.Failure), Received: time.Now()})
			case r.Ending && len(r.Result) > 0 && string(r.Result) != "null":
				replies = append(replies, FanoutReply{Result: r.Result, Received: time.Now()})
			}
		case <-deadline.C:
			return sent, replies, nil
		case <-ctx.Done():
			return sent, replies, ctx.Err()
		}
	}
}

func decodeFailure(s string) error {
	var f failure
	if err := json.Unmarshal([]byte(s), &f); err != nil {
		return &RemoteError{Class: "RemoteError", Message: s}
	}
	return &RemoteError{Class: f.Class, Module: f.Module, Message: f.Message, Traceback: f.TB, Kwargs: f.Kwargs}
}

func (c *Client) ensureReplyQueueWithin(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.ensureReplyQueue(ctx)
}

var errClientClosed = errors.New("rpc: client closed")

// ensureReplyQueue (re)connects the reply consumer; the queue keeps its name
// across reconnects so late replies still find it.
func (c *Client) ensureReplyQueue(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClientClosed
	}
	if c.consuming {
		return nil
	}
	conn, b, err := c.dialer.dial("reply")
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err == nil {
		args := amqp.Table{"x-expires": int32(c.cfg.TransientQueuesTTL.Milliseconds())}
		if c.cfg.HAQueues {
			args["x-ha-policy"] = "all"
		}
		_, err = ch.QueueDeclare(c.replyQ, false, false, false, false, args)
	}
	var deliveries <-chan amqp.Delivery
	if err == nil {
		deliveries, err = ch.Consume(c.replyQ, "", true, false, false, false, nil)
	}
	if err != nil {
		_ = conn.Close()
		return fmt.Errorf("rpc: reply queue on %s: %w", b.redacted, err)
	}
	c.conn, c.consuming = conn, true
	go c.receive(conn, b, deliveries)
	return ctx.Err()
}

// receive hands replies to their callers until the consumer goes away, then
// brings it back at once: calls in flight get the replies that the queue kept
// meanwhile, without waiting for the next call to reconnect.
func (c *Client) receive(conn *amqp.Connection, b *broker, deliveries <-chan amqp.Delivery) {
	for d := range deliveries {
		c.deliver(d)
	}
	c.mu.Lock()
	c.consuming = false
	_ = conn.Close()
	c.mu.Unlock()
	c.dialer.lost(b)
	bo := backoff{min: c.cfg.ReconnectMin / 4, max: c.cfg.ReconnectMax}
	warn := logThrottle{every: unreachableLogEvery}
	for {
		err := c.ensureReplyQueue(context.Background())
		if err == nil || errors.Is(err, errClientClosed) {
			return
		}
		if warn.allow() {
			c.log.Warn("rpc reply consumer reconnect failed", zap.Error(err))
		}
		select {
		case <-time.After(bo.next()):
		case <-c.done:
			return
		}
	}
}

func (c *Client) deliver(d amqp.Delivery) {
	msg, err := unwrapEnvelope(d.Body)
	if msg == nil || err != nil {
		c.log.Warn("rpc dropping unparseable reply", zap.Error(err))
		return
	}
	raw, _ := json.Marshal(msg)
	var r reply
	if err := json.Unmarshal(raw, &r); err != nil {
		c.log.Warn("rpc dropping malformed reply", zap.Error(err))
		return
	}
	c.mu.Lock()
	waiter, ok := c.pending[r.MsgID]
	c.mu.Unlock()
	if !ok {
		c.log.Info("rpc no caller waiting for reply", zap.String("msg_id", r.MsgID))
		return
	}
	select {
	case waiter <- r:
	default:
		c.log.Warn("rpc caller not reading replies, dropping one", zap.String("msg_id", r.MsgID))
	}
}

// Close closes both connections; the reply queue expires on its own.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.done)
	}
	if c.conn != nil {
		_ = c.conn.Close()
		c.conn = nil
	}
	c.pub.close()
	return nil
}

// ParseArg turns key=value into a JSON argument: value as JSON when it is
// valid JSON, else as a string.
func ParseArg(kv string) (string, json.RawMessage, error) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || k == "" {
		return "", nil, fmt.Errorf("argument %q is not key=value", kv)
	}
	if json.Valid([]byte(v)) {
		return k, json.RawMessage(v), nil
	}
	b, _ := json.Marshal(v)
	return k, b, nil
}
