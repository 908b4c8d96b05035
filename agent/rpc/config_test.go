package rpc

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseTransportURL(t *testing.T) {
	bs, err := parseTransportURL("rabbit://u:p%40ss@h1:5673,v:q@h2/cinder", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 {
		t.Fatalf("len(bs) = %v, want 2", len(bs))
	}
	if bs[0].url != "amqp://u:p%40ss@h1:5673/" {
		t.Fatalf("bs[0].url = %q, want \"amqp://u:p%%40ss@h1:5673/\"", bs[0].url)
	}
	if bs[1].url != "amqp://v:q@h2:5672/" {
		t.Fatalf("bs[1].url = %q, want \"amqp://v:q@h2:5672/\"", bs[1].url)
	}
	if bs[0].vhost != "cinder" {
		t.Fatalf("bs[0].vhost = %q, want \"cinder\"", bs[0].vhost)
	}
	if strings.Contains(bs[0].redacted, "ss") {
		t.Errorf("password in %s", bs[0].redacted)
	}
	for raw, vhost := range map[string]string{"rabbit://h": "/", "rabbit://h/": "/", "rabbit://h//": "/", "amqp://h/%2Fx": "/x", "rabbit://h/v?heartbeat_timeout_threshold=10": "v"} {
		bs, err := parseTransportURL(raw, false)
		if err != nil {
			t.Fatalf("%s: err = %v, want nil", raw, err)
		}
		if bs[0].vhost != vhost {
			t.Errorf("%s: bs[0].vhost = %v, want %v", raw, bs[0].vhost, vhost)
		}
	}
	bs, err = parseTransportURL("amqps://u:p@h/", false)
	if err != nil {
		t.Fatalf("amqps: err = %v, want nil", err)
	}
	if !bs[0].tls {
		t.Error("amqps: bs[0].tls = false, want true")
	}
	if bs[0].url != "amqps://u:p@h:5671/" {
		t.Errorf("amqps: bs[0].url = %q, want \"amqps://u:p@h:5671/\"", bs[0].url)
	}
	for _, bad := range []string{"h:5672", "kafka://h", "rabbit:///v", "rabbit://u:secret@h:port/"} {
		_, err := parseTransportURL(bad, false)
		if err == nil {
			t.Errorf("%s: want error", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("password leaked: %v", err)
		}
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"rabbit://u:secret@h1:5672,v:other@h2/vh": "rabbit://u:***@h1:5672,v:***@h2/vh",
		"amqp://user@h/":       "amqp://user@h/",
		"rabbit://h":           "rabbit://h",
		"rabbit://u:p@ss:w@h/": "rabbit://u:***@h/",
		"not a url":            "not a url",
		// Malformed: reserved characters left unescaped in the password.
		"rabbit://aos:pa/ss@host:5672/vhost": "rabbit://aos:***@host:5672/vhost",
		"rabbit://u:pa?ss@h/v":               "rabbit://u:***@h/v",
		"rabbit://u:pa#ss@h/v":               "rabbit://u:***@h/v",
		"rabbit://u:pa,ss@h/v":               "rabbit://u:***@h/v",
		"rabbit://h1:5672,u:p@h2/v?x=1":      "rabbit://h1:5672,u:***@h2/v?x=1",
		"rabbit://u:pa,ss":                   "rabbit://u:***",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("%s: got %s want %s", in, got, want)
		}
	}
}

func TestBackoffDoublesWithinItsUpperHalf(t *testing.T) {
	for _, tc := range []struct {
		name string
		rand func(int64) int64
		want []time.Duration
	}{
		{"lowest draw", func(int64) int64 { return 0 }, []time.Duration{50, 100, 200, 400, 400}},
		{"highest draw", func(n int64) int64 { return n - 1 }, []time.Duration{100, 200, 400, 800, 800}},
	} {
		b := backoff{min: 100, max: 800, rand: tc.rand}
		var got []time.Duration
		for range 5 {
			got = append(got, b.next())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: backoff %v, want %v", tc.name, got, tc.want)
		}
	}
	b := backoff{min: 100 * time.Millisecond, max: 800 * time.Millisecond}
	for range 100 {
		if d := b.next(); d < 50*time.Millisecond || d > 800*time.Millisecond {
			t.Fatalf("delay %v outside [50ms, 800ms]", d)
		}
	}
}

func TestDefaultReconnectStaysUnderASecond(t *testing.T) {
	// The promise: an agent is back within a second of the broker accepting.
	if cfg := (Config{}).withDefaults(); cfg.ReconnectMax >= time.Second || cfg.ReconnectMin > cfg.ReconnectMax {
		t.Errorf("reconnect %v..%v: attempts must stay under 1 s apart", cfg.ReconnectMin, cfg.ReconnectMax)
	}
}

func TestDialerFailsOverToTheNextBrokerFirst(t *testing.T) {
	d, err := newDialer(Config{URL: "rabbit://u:p@h1:1,u:p@h2:2,u:p@h3:3/v"})
	if err != nil {
		t.Fatal(err)
	}
	d.lost(&d.brokers[0])
	if d.next != 1 {
		t.Fatalf("after losing h1, next = %d, want 1 (h2)", d.next)
	}
	d.lost(&d.brokers[0]) // a late report about h1 must not skip h2
	if d.next != 1 {
		t.Fatalf("a second loss of h1 moved next to %d", d.next)
	}
	d.lost(&d.brokers[1])
	d.lost(&d.brokers[2])
	if d.next != 0 {
		t.Fatalf("losing h2 then h3 leaves next = %d, want 0 (wraps)", d.next)
	}
}

func TestQueueOptionsFollowOslo(t *testing.T) {
	if !(Config{QuorumQueues: true}).withDefaults().Durable {
		t.Error("quorum queues must be durable, as oslo's durable property says")
	}
	if _, err := NewClient(Config{URL: "rabbit://h/", Topic: "t", QuorumQueues: true, HAQueues: true}); err == nil {
		t.Error("quorum and HA queues together must be refused, as oslo does")
	}
	cfg, err := (Config{}).withDefaults().tlsConfig()
	if err != nil {
		t.Fatalf("plain connections need no TLS config: err = %v, want nil", err)
	}
	if cfg != nil {
		t.Errorf("plain connections need no TLS config: cfg = %v, want nil", cfg)
	}
	if cfg, err = (Config{CAFile: "testdata/none.pem"}).tlsConfig(); err == nil {
		t.Errorf("missing CA accepted: %+v", cfg)
	}
}

func TestTransportURLErrorsRedactPassword(t *testing.T) {
	for _, raw := range []string{
		"rabbit://aos:PW1/PW2@host:5672/vhost", // the review's case: url.Parse fails on host "aos:PW1"
		"rabbit://aos:1/PW2@host/vhost",        // host "aos:1" parses: caught by the '@' in the path
		"rabbit://aos:PW1?PW2@host/v",
		"rabbit://aos:PW1#PW2@host/v",
		"rabbit://aos:PW1,PW2@host/v",
		"rabbit://aos:PW1%zzPW2@host/v",
		"rabbit://aos:PW1PW2@host:port/v",
		"rabbit:/aos:PW1PW2@host/v",
		"aos:PW1PW2@host://v",
		"kafka://aos:PW1PW2@host/v",
		"rabbit://aos:PW1PW2@host/%zz",
	} {
		_, err := NewClient(Config{URL: raw, Topic: "t"})
		var ue *TransportURLError
		if !errors.As(err, &ue) {
			t.Errorf("%s: got error %v, want a *TransportURLError", raw, err)
			continue
		}
		{
			msg := err.Error()
			if strings.Contains(msg, "PW1") {
				t.Errorf("%s: msg = %q, want it not to contain \"PW1\"", raw, msg)
			}
			if strings.Contains(msg, "PW2") {
				t.Errorf("%s: msg = %q, want it not to contain \"PW2\"", raw, msg)
			}
		}
	}
}

func TestTLSOptionsNeedTLS(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"CA with rabbit://", Config{URL: "rabbit://u:p@h/", CAFile: "/etc/ca.pem"}, []string{"CAFile"}},
		{"client cert with amqp://", Config{URL: "amqp://u:p@h/", CertFile: "/c.pem", KeyFile: "/k.pem"}, []string{"CertFile", "KeyFile"}},
		{"insecure with kombu://", Config{URL: "kombu://u:p@h/", InsecureSkipVerify: true}, []string{"InsecureSkipVerify"}},
	} {
		tc.cfg.Topic, tc.cfg.Server = "t", "s"
		_, cerr := NewClient(tc.cfg)
		_, serr := NewServer(tc.cfg, Dispatcher{Version: "1.0"})
		for who, err := range map[string]error{"NewClient": cerr, "NewServer": serr} {
			var te *TLSOffError
			if !errors.As(err, &te) || !slices.Equal(te.Fields, tc.want) {
				t.Errorf("%s: %s: got %v, want a *TLSOffError naming %v", tc.name, who, err, tc.want)
			} else if msg := err.Error(); !strings.Contains(msg, "amqps://") || !strings.Contains(msg, "TLS") {
				t.Errorf("%s: %s: %q does not say how to turn TLS on", tc.name, who, msg)
			}
		}
	}

	// TLS (oslo's ssl = true) dials every host of a rabbit:// URL with TLS.
	bs, err := parseTransportURL("rabbit://u:p@h1,u:p@h2:5673/v", true)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"amqps://u:p@h1:5671/", "amqps://u:p@h2:5673/"} {
		if !bs[i].tls {
			t.Errorf("host %d with TLS: bs[i].tls = false, want true", i+1)
		}
		if bs[i].url != want {
			t.Errorf("host %d with TLS: bs[i].url = %v, want %v", i+1, bs[i].url, want)
		}
	}
	// ... and uses the files: a missing CA is reported, not skipped.
	_, err = NewClient(Config{URL: "rabbit://u:p@h/", Topic: "t", TLS: true, CAFile: "testdata/none.pem"})
	if err == nil {
		t.Fatal("TLS with a missing CA file: err = nil, want non-nil")
	}
	if !strings.Contains(err.Error(), "rpc TLS CA") {
		t.Errorf("TLS with a missing CA file: err.Error() = %q, want it to contain \"rpc TLS CA\"", err.Error())
	}
}
