package agent

import (
	"bytes"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
)

func TestLoggerJournalPriorities(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "8:1234")
	var buf bytes.Buffer
	log, _, err := NewLogger("debug", &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("d")
	log.Info("i")
	log.Warn("w")
	log.Error("e", zap.String("vg", "vol"))
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{"<7>{", "<6>{", "<4>{", "<3>{"}
	if len(lines) != 4 {
		t.Fatalf("lines: %q", lines)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], w)
		}
	}
	if !strings.Contains(lines[3], `"vg":"vol"`) {
		t.Errorf("fields lost: %s", lines[3])
	}
}

func TestLoggerPlainAndSamplingCounted(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "")
	var buf bytes.Buffer
	reg := prometheus.NewRegistry()
	log, lvl, err := NewLogger("info", &buf, reg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 150; i++ {
		log.Info("same message")
	}
	log.Debug("hidden")
	if strings.HasPrefix(buf.String(), "<") {
		t.Fatalf("unexpected output: buf.String() = %q, want it not to start with \"<\"", buf.String())
	}
	if strings.Contains(buf.String(), "hidden") {
		t.Fatalf("unexpected output: buf.String() = %q, want it not to contain \"hidden\"", buf.String())
	}
	got := testutil.ToFloat64(mustCounter(t, reg))
	if got < 1 {
		t.Fatalf("dropped messages not counted: %v", got)
	}
	lvl.SetLevel(zap.DebugLevel)
	if _, _, err := NewLogger("loud", &buf, nil); err == nil {
		t.Fatal("bad level accepted")
	}
}

func mustCounter(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: err = %v, want nil", err)
	}
	if len(mfs) != 1 {
		t.Fatalf("gather: len(mfs) = %v, want 1", len(mfs))
	}
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "x", Help: "x"}, func() float64 {
		return mfs[0].GetMetric()[0].GetCounter().GetValue()
	})
}
