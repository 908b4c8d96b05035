//go:build integration

package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/cluster"
	"github.com/aos-agent/aos-agent/agent/rpc"
	"github.com/aos-agent/aos-agent/internal/demo"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"
)

func brokerURL(t *testing.T) string {
	url := os.Getenv("AOS_TEST_AMQP_URL")
	if url == "" {
		t.Fatal("AOS_TEST_AMQP_URL is not set: run scripts/rabbitmq.sh start and export its URL")
	}
	return url
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func call(t *testing.T, c *rpc.Client, host, method string, args map[string]any) {
	t.Helper()
	if _, err := c.Call(context.Background(), host, method, args, 30*time.Second); err != nil {
		t.Fatalf("%s on %s: %v", method, host, err)
	}
}

// Five simulated hosts with every mistake the view must find planted: c
// shares a's host_id and initiator name, d's clock is 30 s ahead and its
// sanlock runs another io_timeout, e's agent is dead while e stays in the
// lockspace, and an LV is active on b without its lock; d's multipath
// queues forever and a guest on b would not pause on EIO. The view, gathered
// through a real broker, reports exactly those; the alert rules, fed the
// agents' own scrapes, fire for exactly the cluster-wide ones.
func TestPlantedMistakesOnTheSimulator(t *testing.T) {
	url := brokerURL(t)
	ctx := context.Background()
	topic := fmt.Sprintf("aos-cluster-%d", time.Now().UnixNano())
	o := demo.Options{TransportURL: url, WorkDir: t.TempDir(), Topic: topic, Version: "test", PVSize: 8 << 30,
		Setup: map[string]demo.HostSetup{
			"c": {HostID: 1, InitiatorName: "iqn.2026-12.org.aos-agent.sim:a"},
			"d": {ClockOffset: 30 * time.Second, IOTimeout: 20 * time.Second, NoPathRetry: "queue"},
		}}
	c, err := demo.StartCluster(ctx, o, []string{"a", "b", "c", "d", "e"}, logWriter{t}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	client, err := rpc.NewClient(rpc.Config{URL: url, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	for _, v := range []string{"v1", "v2", "v3"} {
		call(t, client, "a", "create_volume", map[string]any{"volume_name": v, "size": 1})
	}
	call(t, client, "a", "activate_volume", map[string]any{"volume_name": "v1", "mode": "exclusive"})
	call(t, client, "a", "activate_volume", map[string]any{"volume_name": "v2", "mode": "shared"})
	call(t, client, "b", "activate_volume", map[string]any{"volume_name": "v2", "mode": "shared"})
	// What a manual activation without the lock leaves behind.
	if _, err := c.Sim.Host("b").Run(ctx, run.Cmd{Argv: []string{"lvchange", "-ay", "--lockopt", "skiplv", "vol/v3"}}); err != nil {
		t.Fatal(err)
	}
	// A guest on b whose disk hands an EIO to the guest instead of
	// pausing it.
	c.Sim.DefineDomain("b", "instance-2", "v2")
	c.Sim.SetErrorPolicy("b", "instance-2", "report")
	if err := c.StopAgent("e"); err != nil {
		t.Fatal(err)
	}
	scrapes := scrapeAll(t, c, []string{"a", "b", "c", "d"})

	rep, err := cluster.Gather(ctx, client, cluster.Options{Wait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Print(&out, time.Now())
	t.Logf("aos-agent cluster:\n%s", out.String())

	var got []string
	for _, f := range rep.Findings {
		got = append(got, f.Kind+" "+strings.Join(f.Hosts, ","))
	}
	want := []string{
		"duplicate_host_id a,c",
		"duplicate_initiator_name a,c",
		"clock_offset d",
		"timeouts_disagree a,b,c,d",
		"qemu_error_policy b",
		"fence_budget d",
		"agent_silent a,b,c,d",
		"active_without_lock b",
	}
	if !slices.Equal(got, want) {
		t.Errorf("findings\n got %q\nwant %q", got, want)
	}
	if !slices.Equal(rep.Silent, []string{"host_id 5 in the lockspace of VG vol"}) {
		t.Errorf("silent = %q, want e's host_id 5", rep.Silent)
	}
	if rep.Messages != 5 {
		t.Errorf("messages = %d, want 5 (one request, four replies)", rep.Messages)
	}
	var owners []string
	for _, ow := range rep.Owners {
		var hs []string
		for _, h := range ow.Holders {
			hs = append(hs, h.Host+":"+h.Mode)
		}
		owners = append(owners, ow.LV+"="+strings.Join(hs, ",")+"/"+strings.Join(ow.Problems, ","))
	}
	if want := []string{"v1=a:exclusive/", "v2=a:shared,b:shared/", "v3=b:/no-lock"}; !slices.Equal(owners, want) {
		t.Errorf("owners\n got %q\nwant %q", owners, want)
	}
	for _, h := range rep.Answered {
		if h.Host == "a" && (len(h.Holdings) != 2 || h.Holdings[0].Since == nil) {
			t.Errorf("a's holdings %+v, want v1 and v2 with the time their locks were taken", h.Holdings)
		}
	}

	alertsFireOn(t, scrapes, 11*time.Minute, []string{
		`ALERTS{alertname="AOSClockSkew",alertstate="firing",instance="d",severity="warning"}`,
		`ALERTS{alertname="AOSDuplicateHostID",alertstate="firing",host_id="1",severity="critical",vg="vol"}`,
		`ALERTS{alertname="AOSDuplicateInitiatorName",alertstate="firing",initiator_name="iqn.2026-12.org.aos-agent.sim:a",severity="critical"}`,
		`ALERTS{alertname="AOSLockspaceTimeoutsDisagree",alertstate="firing",severity="warning",vg="vol"}`,
	})
}

// scrape is one agent's exposition and when it was taken.
type scrape struct {
	host string
	at   time.Time
	text string
}

func scrapeAll(t *testing.T, c *demo.Cluster, hosts []string) []scrape {
	var out []scrape
	for _, h := range hosts {
		reg := c.Registry(h)
		if reg == nil {
			t.Fatalf("no agent runs on %s", h)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if strings.HasPrefix(mf.GetName(), "aos_") {
				if err := enc.Encode(mf); err != nil {
					t.Fatal(err)
				}
			}
		}
		out = append(out, scrape{host: h, at: time.Now(), text: b.String()})
	}
	return out
}

// alertsFireOn feeds every agent's scrape to promtool as series held for
// the test's span (instance = host; aos_time_seconds as the agent's offset
// from the scrape time plus promtool's clock) and checks that exactly want
// fire at eval.
func alertsFireOn(t *testing.T, scrapes []scrape, eval time.Duration, want []string) {
	const steps = 40
	var series []string
	for _, s := range scrapes {
		for _, line := range strings.Split(s.text, "\n") {
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			name, value := line[:i], line[i+1:]
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("scrape of %s: %q", s.host, line)
			}
			if open := strings.IndexByte(name, '{'); open >= 0 {
				name = name[:open+1] + `instance="` + s.host + `",` + name[open+1:]
			} else {
				name += `{instance="` + s.host + `"}`
			}
			values := fmt.Sprintf("%gx%d", v, steps)
			if strings.HasPrefix(name, "aos_time_seconds{") {
				values = fmt.Sprintf("%g+30x%d", v-float64(s.at.UnixNano())/1e9, steps)
			}
			series = append(series, fmt.Sprintf("      - series: '%s'\n        values: '%s'", name, values))
		}
	}
	rules, err := filepath.Abs("../../configs/prometheus/aos_alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	var exp []string
	for _, w := range want {
		exp = append(exp, "          - labels: '"+w+"'\n            value: 1")
	}
	test := fmt.Sprintf(`rule_files:
  - %s
evaluation_interval: 30s
tests:
  - interval: 30s
    input_series:
%s
    promql_expr_test:
      - expr: 'ALERTS{alertstate="firing"}'
        eval_time: %s
        exp_samples:
%s
`, rules, strings.Join(series, "\n"), eval, strings.Join(exp, "\n"))
	file := filepath.Join(t.TempDir(), "scraped_alerts_test.yml")
	if err := os.WriteFile(file, []byte(test), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("promtool", "test", "rules", file).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool on the agents' scrapes: %v\n%s\n(test file:\n%s)", err, out, test)
	}
}

// The view costs one request and one reply per host: with 32 simulated
// hosts, 33 messages. Reported, not asserted on time.
func TestViewCostFor32Hosts(t *testing.T) {
	url := brokerURL(t)
	ctx := context.Background()
	topic := fmt.Sprintf("aos-cluster32-%d", time.Now().UnixNano())
	hosts := make([]string, 32)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%02d", i+1)
	}
	c, err := demo.StartCluster(ctx, demo.Options{TransportURL: url, WorkDir: t.TempDir(), Topic: topic, Version: "test", PVSize: 8 << 30},
		hosts, &bytes.Buffer{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	client, err := rpc.NewClient(rpc.Config{URL: url, Topic: topic})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	rep, err := cluster.Gather(ctx, client, cluster.Options{Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Answered) != 32 {
		t.Fatalf("len(rep.Answered) = %v, want 32", len(rep.Answered))
	}
	if rep.Messages != 33 {
		t.Fatalf("rep.Messages = %v, want 33", rep.Messages)
	}
	if len(rep.Findings) != 0 {
		t.Errorf("findings on a healthy cluster: %+v", rep.Findings)
	}
	fmt.Printf("cluster view, 32 simulated hosts: %d messages, last answer after %s\n", rep.Messages, rep.LastAnswer.Round(time.Millisecond))
}
