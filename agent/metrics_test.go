package agent

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/metrics.golden")

// descRE takes name, help and variable labels apart from Desc.String().
var descRE = regexp.MustCompile(`fqName: "([^"]+)", help: "((?:[^"\\]|\\.)*)", (?:unit: "[^"]*", )?constLabels: \{[^}]*\}, variableLabels: \{([^}]*)\}`)

// Every metric the agent defines, as the daemon registers them on a
// simulated host, against testdata/metrics.golden (name{labels} help): a
// metric added, renamed or relabelled shows here first, and 50-prometheus
// checks the dashboard and alerts against the same file. With AOS_SCRAPE_OUT
// set, a real scrape after one poll is written there for promtool check
// metrics.
func TestMetricsGolden(t *testing.T) {
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, VG: "vol", JoinTime: -1})
	mustRun(t, c, "h1", "vgchange", "--lock-start", "vol")
	cfg := config.Default()
	cfg.Host, cfg.StateDir = "h1", t.TempDir()
	cfg.RuntimeDir = cfg.StateDir
	cfg.LVM.VolumeGroups, cfg.LVM.MultipathAlias = []string{"vol"}, "lun0"
	cfg.Metrics.Listen, cfg.LogLevel = "", "error"
	d, err := New(cfg, Options{Version: "test", Runner: c.Host("h1"), PollInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d.health(ctx, d.monitor.Poll(ctx))

	descs := make(chan *prometheus.Desc)
	go func() { d.reg.Describe(descs); close(descs) }()
	var lines []string
	for desc := range descs {
		m := descRE.FindStringSubmatch(desc.String())
		if m == nil {
			t.Fatalf("cannot read %s", desc)
		}
		if !strings.HasPrefix(m[1], "aos_") {
			continue // Go runtime and process collectors
		}
		lines = append(lines, m[1]+"{"+m[3]+"} "+m[2])
	}
	slices.Sort(lines)
	got := strings.Join(lines, "\n") + "\n"
	golden := filepath.Join("testdata", "metrics.golden")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("metrics differ from %s (go test ./agent -run TestMetricsGolden -update rewrites it)\ngot:\n%swant:\n%s", golden, got, want)
	}

	if out := os.Getenv("AOS_SCRAPE_OUT"); out != "" {
		mfs, err := d.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
