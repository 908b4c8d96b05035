package multipath

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// QueueConfig is how long multipath queues I/O once the last path of a map
// fails: no_path_retry polling intervals ("queue": forever, "fail" or 0:
// not at all). It decides whether a host that lost its paths sees I/O
// errors, and so fences, before its sanlock lease expires.
type QueueConfig struct {
	NoPathRetry     string `json:"no_path_retry"`
	PollingInterval int    `json:"polling_interval"`
}

// DefaultQueueConfig is multipath-tools' built-in: no queueing, 5 s polls.
var DefaultQueueConfig = QueueConfig{NoPathRetry: "fail", PollingInterval: 5}

var queueKey = regexp.MustCompile(`(?m)^\s*(no_path_retry|polling_interval)\s+"?([A-Za-z0-9]+)"?`)

// ReadQueueConfig reads no_path_retry and polling_interval from
// multipath.conf and then every *.conf of its config_dir (Debian's
// /etc/multipath/conf.d), a later setting overriding an earlier one as
// multipathd merges them. Missing files are multipath's defaults; a
// device section's override is read like a global one (the shared LUN's
// settings are the only ones `aos-agent install` writes).
func ReadQueueConfig(conf, confDir string) QueueConfig {
	q := DefaultQueueConfig
	files, _ := filepath.Glob(filepath.Join(confDir, "*.conf"))
	for _, p := range append([]string{conf}, files...) {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, m := range queueKey.FindAllStringSubmatch(string(b), -1) {
			if m[1] == "no_path_retry" {
				q.NoPathRetry = m[2]
			} else if n, err := strconv.Atoi(m[2]); err == nil && n > 0 {
				q.PollingInterval = n
			}
		}
	}
	return q
}

// QueueFor is how long I/O queues with no path left; forever for "queue".
func (q QueueConfig) QueueFor() (d time.Duration, forever bool, err error) {
	switch q.NoPathRetry {
	case "queue":
		return 0, true, nil
	case "fail", "0":
		return 0, false, nil
	}
	n, err := strconv.Atoi(q.NoPathRetry)
	if err != nil || n < 0 {
		return 0, false, fmt.Errorf("no_path_retry %q not understood", q.NoPathRetry)
	}
	return time.Duration(n*q.PollingInterval) * time.Second, false, nil
}
