package rpc

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseTransportURL(t *testing.T) {
	bs, err := parseTransportURL("rabbit://u:p%40ss@h1:5673,v:q@h2/cinder")
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || bs[0].url != "amqp://u:p%40ss@h1:5673/" || bs[1].url != "amqp://v:q@h2:5672/" || bs[0].vhost != "cinder" {
		t.Fatalf("%+v", bs)
	}
	if strings.Contains(bs[0].redacted, "ss") {
		t.Errorf("password in %s", bs[0].redacted)
	}
	for raw, vhost := range map[string]string{"rabbit://h": "/", "rabbit://h/": "/", "rabbit://h//": "/", "amqp://h/%2Fx": "/x", "rabbit://h/v?heartbeat_timeout_threshold=10": "v"} {
		bs, err := parseTransportURL(raw)
		if err != nil || bs[0].vhost != vhost {
			t.Errorf("%s: %+v %v", raw, bs, err)
		}
	}
	bs, err = parseTransportURL("amqps://u:p@h/")
	if err != nil || !bs[0].tls || bs[0].url != "amqps://u:p@h:5671/" {
		t.Errorf("amqps: %+v %v", bs, err)
	}
	for _, bad := range []string{"h:5672", "kafka://h", "rabbit:///v", "rabbit://u:secret@h:port/"} {
		_, err := parseTransportURL(bad)
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
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("%s: got %s want %s", in, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := backoff{min: 1, max: 5}
	var got []time.Duration
	for range 5 {
		got = append(got, b.next())
	}
	if want := []time.Duration{1, 2, 4, 5, 5}; !slices.Equal(got, want) {
		t.Errorf("backoff %v, want %v", got, want)
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
	if err != nil || cfg != nil {
		t.Errorf("plain connections need no TLS config: %v %v", cfg, err)
	}
	if cfg, err = (Config{CAFile: "testdata/none.pem"}).tlsConfig(); err == nil {
		t.Errorf("missing CA accepted: %+v", cfg)
	}
}
