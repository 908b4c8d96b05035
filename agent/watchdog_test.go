package agent

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aos-agent/aos-agent/agent/config"
	"github.com/aos-agent/aos-agent/sim"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
)

// The unit's WatchdogSec in these tests, as systemd passes it.
const watchdogTimeout = 30 * time.Second

// sdMessage is one sd_notify message, with the (bubble's) time it was sent.
type sdMessage struct {
	at    time.Time
	state string
}

// recordingNotifier stands in for systemd's notify socket.
type recordingNotifier struct {
	mu   sync.Mutex
	sent []sdMessage
}

func (r *recordingNotifier) send(state string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, sdMessage{time.Now(), state})
	return nil
}

func (r *recordingNotifier) Ready() error          { return r.send("READY=1") }
func (r *recordingNotifier) Status(s string) error { return r.send("STATUS=" + s) }
func (r *recordingNotifier) Stopping() error       { return r.send("STOPPING=1") }
func (r *recordingNotifier) Watchdog() error       { return r.send("WATCHDOG=1") }

func (r *recordingNotifier) messages() []sdMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.sent)
}

// times returns when the messages that match were sent.
func (r *recordingNotifier) times(match func(state string) bool) []time.Time {
	var at []time.Time
	for _, m := range r.messages() {
		if match(m.state) {
			at = append(at, m.at)
		}
	}
	return at
}

// withWatchdog sets what systemd sets for a unit with WatchdogSec (outside
// the bubble: the environment is process-wide).
func withWatchdog(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdogTimeout.Microseconds(), 10))
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
}

// hungSanlockDaemon is a daemon on a simulated h1 with the lockspace joined
// and `sanlock client status` hung (sanlock alive but stuck, not crashed).
func hungSanlockDaemon(t *testing.T, poll time.Duration) (*Daemon, *recordingNotifier) {
	t.Helper()
	cfg := config.Default()
	cfg.Host, cfg.StateDir = "h1", t.TempDir()
	cfg.RuntimeDir = cfg.StateDir
	cfg.LVM.VolumeGroups, cfg.LVM.MultipathAlias = []string{"vol"}, "lun0"
	cfg.Metrics.Listen, cfg.Recovery.Mode = "", "manual"
	c := sim.NewCluster(sim.Options{Hosts: []sim.HostSpec{{Name: "h1", HostID: 1}}, VG: "vol", JoinTime: -1})
	mustRun(t, c, "h1", "vgchange", "--lock-start", "vol")
	d, err := New(cfg, Options{Runner: c.Host("h1"), Logger: zap.NewNop(), PollInterval: poll})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingNotifier{}
	d.notifier = rec
	c.HangCommands("h1", "sanlock client status")
	return d, rec
}

// A hung sanlock must not hold the poll past its probe deadline: the poll
// completes with sanlock reported hung (snapshot, STATUS, metrics), the
// other collectors' data present, and the watchdog petted.
func TestHungProbeIsReportedAndThePollStillPets(t *testing.T) {
	withWatchdog(t)
	synctest.Test(t, func(t *testing.T) {
		d, rec := hungSanlockDaemon(t, 5*time.Second)
		// systemd wants a pet every WatchdogSec/2; a probe gets a third of that.
		if got, want := d.monitor.ProbeTimeout, watchdogTimeout/6; got != want {
			t.Errorf("probe deadline: got %v, want %v", got, want)
		}
		ctx := context.Background()
		start := time.Now()
		snap := d.monitor.Poll(ctx)
		if took := time.Since(start); took > d.monitor.ProbeTimeout {
			t.Errorf("poll with sanlock hung took %v, want at most the probe deadline %v", took, d.monitor.ProbeTimeout)
		}
		if got, want := snap.Hung(), []string{collectorSanlock}; !slices.Equal(got, want) {
			t.Errorf("hung collectors: got %q, want %q (errors %v)", got, want, snap.Errors)
		}
		if len(snap.Errors) != 1 {
			t.Errorf("collector errors: got %v, want only sanlock's", snap.Errors)
		}
		if snap.Map == nil {
			t.Error("multipath map missing while only sanlock hung")
		}
		{
			l := snap.Lockspaces["vol"]
			if l == nil {
				t.Fatal("lvmlockctl's view of vol missing while only sanlock hung: l = nil, want non-nil")
			}
			if l.HostID != 1 {
				t.Errorf("lvmlockctl's view of vol missing while only sanlock hung: l.HostID = %v, want 1", l.HostID)
			}
		}
		want := `
# HELP aos_collector_hung 1 when the collector's last probe got no answer in time: its daemon is hung, not down.
# TYPE aos_collector_hung gauge
aos_collector_hung{collector="lvmlockctl"} 0
aos_collector_hung{collector="multipath"} 0
aos_collector_hung{collector="sanlock"} 1
# HELP aos_collector_success 1 when the collector's last poll succeeded.
# TYPE aos_collector_success gauge
aos_collector_success{collector="lvmlockctl"} 1
aos_collector_success{collector="multipath"} 1
aos_collector_success{collector="sanlock"} 0
`
		if err := testutil.GatherAndCompare(d.Registry(), strings.NewReader(want), "aos_collector_hung", "aos_collector_success"); err != nil {
			t.Error(err)
		}

		d.ready.Store(true) // READY was sent (it needs the broker, tested in 30-rpc)
		d.health(ctx, snap)
		msgs := rec.messages()
		if len(msgs) != 2 || msgs[0].state != "WATCHDOG=1" || !strings.HasPrefix(msgs[1].state, "STATUS=degraded: ") ||
			!strings.Contains(msgs[1].state, "sanlock probe hung") {
			t.Errorf("sd_notify after the poll: got %v, want WATCHDOG=1 then a degraded STATUS naming the sanlock probe hung", msgs)
		}
	})
}

// With polls a minute apart, longer than the pet interval, and every poll
// slowed by a hung sanlock, systemd still gets a pet well within
// WatchdogSec of the previous one.
func TestWatchdogPettedBetweenSlowPolls(t *testing.T) {
	withWatchdog(t)
	synctest.Test(t, func(t *testing.T) {
		d, rec := hungSanlockDaemon(t, time.Minute)
		ctx, stop := context.WithCancel(context.Background())
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			d.healthLoop(ctx, nil)
		}()
		time.Sleep(10 * time.Minute)
		stop()
		<-done
		end := time.Now()

		pets := rec.times(func(s string) bool { return s == "WATCHDOG=1" })
		if len(pets) == 0 {
			t.Fatal("the watchdog was never petted")
		}
		last := start
		for _, at := range append(pets, end) {
			if gap := at.Sub(last); gap >= watchdogTimeout {
				t.Errorf("no pet from +%v to +%v: %v, want under WatchdogSec %v", last.Sub(start), at.Sub(start), gap, watchdogTimeout)
			}
			last = at
		}
		hung := rec.times(func(s string) bool {
			return strings.HasPrefix(s, "STATUS=") && strings.Contains(s, "sanlock probe hung")
		})
		if len(hung) < 10 {
			t.Errorf("STATUS naming the sanlock probe hung over 10 minutes of polls a minute apart: got %d, want at least 10", len(hung))
		}
	})
}
