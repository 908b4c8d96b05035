package multipath

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadQueueConfig(t *testing.T) {
	dir := t.TempDir()
	confDir := filepath.Join(dir, "conf.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "multipath.conf")
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := ReadQueueConfig(conf, confDir); got != DefaultQueueConfig {
		t.Errorf("no files: %+v, want the defaults %+v", got, DefaultQueueConfig)
	}
	write(conf, "defaults {\n    polling_interval 2\n    no_path_retry queue\n}\n")
	write(filepath.Join(confDir, "aos-agent.conf"), "devices {\n  device {\n    no_path_retry \"4\"\n  }\n}\n")
	got := ReadQueueConfig(conf, confDir)
	if want := (QueueConfig{NoPathRetry: "4", PollingInterval: 2}); got != want {
		t.Errorf("conf.d overrides: %+v, want %+v", got, want)
	}
}

func TestQueueFor(t *testing.T) {
	for _, c := range []struct {
		q       QueueConfig
		want    time.Duration
		forever bool
		err     bool
	}{
		{QueueConfig{"4", 5}, 20 * time.Second, false, false},
		{QueueConfig{"queue", 5}, 0, true, false},
		{QueueConfig{"fail", 5}, 0, false, false},
		{QueueConfig{"0", 5}, 0, false, false},
		{QueueConfig{"soon", 5}, 0, false, true},
		{QueueConfig{"-2", 5}, 0, false, true},
	} {
		d, forever, err := c.q.QueueFor()
		if d != c.want || forever != c.forever || (err != nil) != c.err {
			t.Errorf("%+v: QueueFor() = %v, %v, %v; want %v, %v, error %v", c.q, d, forever, err, c.want, c.forever, c.err)
		}
	}
}
