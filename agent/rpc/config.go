// Package rpc speaks oslo.messaging RPC (the rabbit driver, AMQP 0-9-1) so a
// Python oslo_messaging.RPCClient cannot tell the agent from an oslo server.
// It knows nothing of LVM: callers register methods on a Dispatcher.
package rpc

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Config configures a Server or Client. Zero values take oslo's defaults.
type Config struct {
	// URL is an oslo transport URL: rabbit://, amqp:// or amqps:// (all AMQP
	// 0-9-1 here), several hosts comma-separated: rabbit://u:p@h1:5672,u:p@h2/vhost.
	URL      string
	Exchange string // control exchange, default "openstack"
	Topic    string
	Server   string // host name: forms the TOPIC.SERVER queue

	// Durable and AutoDelete mirror amqp_durable_queues / amqp_auto_delete;
	// every declare must match the client's or the broker refuses it.
	Durable, AutoDelete bool
	// QuorumQueues is rabbit_quorum_queue: x-queue-type=quorum on the topic
	// queues, which implies Durable as in oslo.
	QuorumQueues bool
	// HAQueues is rabbit_ha_queues: x-ha-policy=all on every queue, reply and
	// fanout queues included. oslo refuses it together with QuorumQueues.
	HAQueues           bool
	TransientQueuesTTL time.Duration
	Concurrency        int // methods running at once, default 64 like oslo's executor

	// TLS dials every broker with TLS, as oslo's [oslo_messaging_rabbit]
	// ssl = true does for rabbit:// URLs; amqps:// implies it. Without TLS
	// the fields below are refused (TLSOffError), not ignored.
	TLS                       bool
	CAFile, CertFile, KeyFile string
	InsecureSkipVerify        bool

	HeartbeatInterval time.Duration // AMQP heartbeat, default 10 s
	// Reconnect attempts start ReconnectMin apart and double up to
	// ReconnectMax (each jittered into its upper half). oslo's defaults (1 s
	// doubling to 30 s) kept agents away up to 30 s after the broker was
	// back; 0.1 s to 0.8 s brings them back within a second of it accepting
	// connections, at the cost of one refused TCP connect per agent per
	// 0.8 s while it is down.
	ReconnectMin      time.Duration // default 100 ms
	ReconnectMax      time.Duration // default 800 ms
	ShutdownTimeout   time.Duration // in-flight work allowed on Stop, default 30 s
	ReplyRetryTimeout time.Duration // retrying a reply to a missing queue, default 60 s
	MaxBodyBytes      int           // larger requests are refused, default 4 MiB
	Logger            *zap.Logger
	Registerer        prometheus.Registerer
	// RequestTimeout is each request's deadline, given to its handler's
	// context, so a request cannot hold its concurrency slot and its LV
	// locks forever. oslo sends no deadline with a call (_timeout is only
	// the call-monitor interval). Default 2 h: above the 1 h a volume copy
	// or wipe may take, so it is a backstop that never cuts those short.
	RequestTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Exchange == "" {
		c.Exchange = "openstack"
	}
	if c.QuorumQueues {
		c.Durable = true
	}
	if c.TransientQueuesTTL == 0 {
		c.TransientQueuesTTL = 1800 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 10 * time.Second
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = 100 * time.Millisecond
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = 800 * time.Millisecond
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.ReplyRetryTimeout == 0 {
		c.ReplyRetryTimeout = 60 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 2 * time.Hour
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}

func (c Config) validate() error {
	if c.QuorumQueues && c.HAQueues {
		return errors.New("rpc: QuorumQueues and HAQueues are exclusive (rabbit_quorum_queue, rabbit_ha_queues)")
	}
	return nil
}

// TLSOffError is a Config with TLS options while TLS is off: they would be
// ignored and the broker credentials sent in clear, so they are refused.
type TLSOffError struct {
	Fields []string // the TLS fields that are set, e.g. "CAFile"
}

func (e *TLSOffError) Error() string {
	return fmt.Sprintf("rpc: %s set but TLS is off: set TLS (oslo's ssl = true) or use an amqps:// URL", strings.Join(e.Fields, ", "))
}

// tlsOptions names the TLS fields that are set.
func (c Config) tlsOptions() []string {
	var set []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"CAFile", c.CAFile != ""},
		{"CertFile", c.CertFile != ""},
		{"KeyFile", c.KeyFile != ""},
		{"InsecureSkipVerify", c.InsecureSkipVerify},
	} {
		if f.set {
			set = append(set, f.name)
		}
	}
	return set
}

// TransportURLError is a malformed transport URL. URL is already redacted
// (empty when no scheme shows where the credentials are), so the error can
// be logged and printed as is.
type TransportURLError struct {
	URL    string
	Reason string
}

func (e *TransportURLError) Error() string {
	if e.URL == "" {
		return "transport URL: " + e.Reason
	}
	return fmt.Sprintf("transport URL %q: %s", e.URL, e.Reason)
}

// broker is one host of a transport URL, ready for amqp.DialConfig.
type broker struct {
	url      string // amqp(s)://user:pass@host:port/ — vhost passed separately
	vhost    string
	tls      bool
	redacted string
}

// parseTransportURL splits an oslo transport URL into one broker per host,
// dialled with TLS when forceTLS is set or the scheme says so. Each host may
// carry its own credentials; a host without any inherits none and amqp091
// falls back to guest. Errors never hold the raw URL: parts of a malformed
// one may be a password.
func parseTransportURL(raw string, forceTLS bool) ([]broker, error) {
	urlErr := func(format string, a ...any) error {
		return &TransportURLError{URL: RedactURL(raw), Reason: fmt.Sprintf(format, a...)}
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || !isScheme(scheme) {
		return nil, &TransportURLError{Reason: "missing scheme, want rabbit://, amqp:// or amqps://"}
	}
	useTLS := forceTLS
	switch scheme {
	case "rabbit", "kombu", "amqp":
	case "amqps", "rabbits":
		useTLS = true
	default:
		return nil, urlErr("unsupported scheme %q", scheme)
	}
	// The host list ends where oslo's (urlparse's netloc) does.
	end := len(rest)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		end = i
	}
	hostsPart, tail := rest[:end], rest[end:]
	if strings.Contains(tail, "@") {
		return nil, urlErr("'@' after the host list: percent-encode '/', '?' and '#' in a password (/ as %%2F) and '@' in a vhost (%%40)")
	}
	path, _, _ := strings.Cut(strings.TrimPrefix(tail, "/"), "?") // per-host query overrides are oslo options we don't read
	path, _, _ = strings.Cut(path, "#")
	vhost, err := url.PathUnescape(path)
	if err != nil {
		return nil, urlErr("vhost: %v", err)
	}
	if vhost == "" {
		vhost = "/"
	}
	amqpScheme, port := "amqp", "5672"
	if useTLS {
		amqpScheme, port = "amqps", "5671"
	}
	var out []broker
	for _, h := range strings.Split(hostsPart, ",") {
		if h == "" {
			continue
		}
		u, err := url.Parse(amqpScheme + "://" + h + "/")
		if err != nil { // err quotes h, which may hold a password
			return nil, urlErr("host %d is not [user:password@]host[:port]; percent-encode reserved characters of a user name or password (e.g. / as %%2F)", len(out)+1)
		}
		if u.Port() == "" {
			u.Host += ":" + port
		}
		out = append(out, broker{url: u.String(), vhost: vhost, tls: useTLS, redacted: RedactURL(u.String())})
	}
	if len(out) == 0 {
		return nil, urlErr("no host")
	}
	return out, nil
}

// isScheme reports whether s is a URL scheme (RFC 3986), so that text
// before "://" which is not one is never echoed: it may be credentials.
func isScheme(s string) bool {
	for i, r := range s {
		switch {
		case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case i > 0 && ('0' <= r && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// RedactURL replaces every password in a (possibly multi-host) transport URL
// with "***", so URLs can be logged and put in errors. It also covers
// malformed URLs whose password holds an unescaped '/', '?', '#' or ','.
func RedactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	// The host list ends at the first '/', '?' or '#' after the last '@',
	// not before it: there such a character is part of a password.
	end := len(rest)
	lastAt := strings.LastIndex(rest, "@")
	if i := strings.IndexAny(rest[lastAt+1:], "/?#"); i >= 0 {
		end = lastAt + 1 + i
	}
	var out []string
	pending := "" // a part that is no host[:port]: a password cut at a ','
	for _, p := range strings.Split(rest[:end], ",") {
		if pending != "" {
			p, pending = pending+","+p, ""
		}
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if user, _, hasPass := strings.Cut(p[:at], ":"); hasPass {
				p = user + ":***" + p[at:]
			}
		} else if !isHostPort(p) {
			pending = p
			continue
		}
		out = append(out, p)
	}
	if pending != "" { // no '@' came: hide what may follow a user name
		if user, _, hasPass := strings.Cut(pending, ":"); hasPass {
			pending = user + ":***"
		}
		out = append(out, pending)
	}
	return scheme + "://" + strings.Join(out, ",") + rest[end:]
}

// isHostPort reports whether s is host[:port] with a numeric port.
func isHostPort(s string) bool {
	u, err := url.Parse("amqp://" + s)
	return err == nil && u.Host == s
}

func (c Config) tlsConfig() (*tls.Config, error) {
	if c.CAFile == "" && c.CertFile == "" && c.KeyFile == "" && !c.InsecureSkipVerify {
		return nil, nil
	}
	tc := &tls.Config{InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("rpc TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("rpc TLS CA %s: no certificate found", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" || c.KeyFile != "" {
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, errors.New("rpc TLS: cert and key must be given together")
		}
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("rpc TLS client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
