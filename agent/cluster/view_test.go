package cluster

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/agent/volumes"
	"github.com/aos-agent/aos-agent/multipath"
)

// host is a healthy member of VG vol's lockspace seeing peers live.
func host(name string, id uint64, peers ...uint64) HostView {
	ls := LockspaceFacts{VG: "vol", Lockspace: "lvm_vol", State: "joined", HostID: id, Generation: 1, IOTimeout: 10}
	for _, p := range append([]uint64{id}, peers...) {
		ls.Peers = append(ls.Peers, Peer{HostID: p, Generation: 1, State: "LIVE"})
	}
	return HostView{HostFacts: HostFacts{
		Host: name, AgentVersion: "1.0", LVMVersion: "2.03.16(2)", SanlockVersion: "3.8.5",
		InitiatorName: "iqn.2026-12.org.example:" + name, Ready: true, Recovery: "idle",
		Lockspaces: []LockspaceFacts{ls},
		Multipath:  &MultipathFacts{Alias: "lun0", Present: true, Queueing: "off", PathsTotal: 2, PathsActive: 2},
	}, ClockUncertainty: time.Millisecond}
}

func kinds(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Kind+" "+strings.Join(f.Hosts, ","))
	}
	return out
}

func TestHealthyClusterHasNoFindings(t *testing.T) {
	a, b := host("a", 1, 2), host("b", 2, 1)
	a.Holdings = []volumes.Holding{{VG: "vol", LV: "v1", Mode: volumes.Exclusive, Active: true}}
	b.Holdings = []volumes.Holding{{VG: "vol", LV: "v2", Mode: volumes.Shared, Active: true}}
	a.Holdings = append(a.Holdings, volumes.Holding{VG: "vol", LV: "v2", Mode: volumes.Shared, Active: true})
	r := Analyze([]HostView{b, a}, Options{Expect: []string{"a", "b"}})
	if len(r.Findings) != 0 {
		t.Fatalf("findings %q, want none", kinds(r))
	}
	if len(r.Owners) != 2 {
		t.Fatalf("owners %+v, want v1 and v2", r.Owners)
	}
	{
		got := r.Owners[1]
		if got.LV != "v2" {
			t.Errorf("v2: got.LV = %q, want \"v2\"", got.LV)
		}
		if len(got.Holders) != 2 {
			t.Fatalf("v2: len(got.Holders) = %v, want 2", len(got.Holders))
		}
		if len(got.Problems) != 0 {
			t.Errorf("v2: len(got.Problems) = %v, want 0", len(got.Problems))
		}
	}
}

// Every planted mistake is reported, and nothing else.
func TestPlantedMistakes(t *testing.T) {
	a := host("a", 1, 2, 3, 5)
	b := host("b", 2, 1, 3, 5)
	c := host("c", 1, 2, 3, 5) // same host_id as a
	c.InitiatorName = a.InitiatorName
	d := host("d", 3, 1, 2, 5)
	d.ClockOffset = 30 * time.Second
	d.Lockspaces[0].IOTimeout = 20
	d.AgentVersion = "0.9"
	// host_id 5 is live in sanlock, but its agent does not answer
	b.Holdings = []volumes.Holding{{VG: "vol", LV: "orphan", Active: true}}
	r := Analyze([]HostView{a, b, c, d}, Options{Expect: []string{"a", "b", "c", "d", "e"}})
	want := []string{
		"duplicate_host_id a,c",
		"duplicate_initiator_name a,c",
		"clock_offset d",
		"timeouts_disagree a,b,c,d",
		"mixed_versions a,b,c,d",
		"agent_silent e",
		"agent_silent a,b,c,d",
		"active_without_lock b",
	}
	if got := kinds(r); !slices.Equal(got, want) {
		t.Fatalf("findings\n got %q\nwant %q", got, want)
	}
	if !slices.Equal(r.Silent, []string{"e", "host_id 5 in the lockspace of VG vol"}) {
		t.Errorf("silent = %q", r.Silent)
	}
	for _, f := range r.Findings {
		if f.Fix == "" || f.Message == "" {
			t.Errorf("%s without message or fix", f.Kind)
		}
	}
}

func TestLockConflictAndDeadLease(t *testing.T) {
	a, b := host("a", 1, 2), host("b", 2, 1)
	b.Lockspaces[0].State = "failed"
	a.Holdings = []volumes.Holding{{VG: "vol", LV: "v1", Mode: volumes.Exclusive, Active: true}}
	b.Holdings = []volumes.Holding{{VG: "vol", LV: "v1", Mode: volumes.Exclusive, Active: true}}
	r := Analyze([]HostView{a, b}, Options{})
	want := []string{"not_in_lockspace b", "lock_on_dead_lease a,b", "lock_conflict a,b"}
	if got := kinds(r); !slices.Equal(got, want) {
		t.Fatalf("findings\n got %q\nwant %q", got, want)
	}
	if got := r.Owners[0].Problems; !slices.Equal(got, []string{"dead-lease", "conflict"}) {
		t.Errorf("problems = %q, want dead-lease and conflict", got)
	}
}

// An offset within the measurement's uncertainty is not a finding.
func TestClockOffsetWithinUncertainty(t *testing.T) {
	a := host("a", 1)
	a.ClockOffset, a.ClockUncertainty = 2500*time.Millisecond, time.Second
	if r := Analyze([]HostView{a}, Options{}); len(r.Findings) != 0 {
		t.Fatalf("findings %q, want none", kinds(r))
	}
}

func TestPrint(t *testing.T) {
	a := host("a", 1)
	since := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	a.Holdings = []volumes.Holding{{VG: "vol", LV: "v1", Mode: volumes.Exclusive, Active: true, Since: &since}}
	r := Analyze([]HostView{a}, Options{Expect: []string{"a", "z"}})
	r.Messages = 2
	var b strings.Builder
	r.Print(&b, since.Add(90*time.Second))
	for _, want := range []string{"NOT ANSWERING: z", "vol/v1  a ex for 1m30s", "[critical] agent_silent: z did not answer"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, b.String())
		}
	}
}

// A fenced host is reported as such, not as a stranger to the lockspace,
// and the fence's queueing off is not a disagreement.
func TestFencedHost(t *testing.T) {
	a, b := host("a", 1, 2), host("b", 2, 1)
	b.Recovery, b.Lockspaces[0].State, b.Multipath.Queueing = "fenced", "absent", "-"
	b.Holdings = []volumes.Holding{{VG: "vol", LV: "v1", Active: true, Offline: true}}
	// Its lockspace dropped, b reports no host_id there, while a still sees
	// b's lease alive until it expires: b answers for its configured one.
	b.Lockspaces[0].HostID, b.Lockspaces[0].Peers, b.ConfiguredHostID = 0, nil, 2
	r := Analyze([]HostView{a, b}, Options{})
	if got, want := kinds(r), []string{"fenced b"}; !slices.Equal(got, want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
	if got := r.Owners[0].Problems; !slices.Equal(got, []string{"fenced"}) {
		t.Errorf("v1 problems = %q, want fenced", got)
	}
}

// After recovery an LV lost to another host stays on the error target
// while its VM keeps it open: it cannot write, so it is no lock conflict,
// but the operator must clear it.
func TestOfflineAfterRecovery(t *testing.T) {
	a, b := host("a", 1, 2), host("b", 2, 1)
	a.Holdings = []volumes.Holding{{VG: "vol", LV: "v1", Mode: volumes.Exclusive, Active: true}}
	b.Holdings = []volumes.Holding{{VG: "vol", LV: "v1", Active: true, Offline: true}}
	r := Analyze([]HostView{a, b}, Options{})
	if got, want := kinds(r), []string{"lv_offline b"}; !slices.Equal(got, want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
	if got := r.Owners[0].Problems; !slices.Equal(got, []string{"offline"}) {
		t.Errorf("v1 problems = %q, want offline", got)
	}
	var out strings.Builder
	r.Print(&out, time.Now())
	if want := "vol/v1  a ex; b NO LOCK (error table)"; !strings.Contains(out.String(), want) {
		t.Errorf("output lacks %q:\n%s", want, out.String())
	}
}

// A duplicate planted in lvmlocal.conf is found before the next join
// makes it bite, and the host that changed it is told so.
func TestConfiguredHostID(t *testing.T) {
	a, b := host("a", 1, 2), host("b", 2, 1)
	a.ConfiguredHostID, b.ConfiguredHostID = 1, 1
	c := host("c", 0)
	c.Lockspaces[0].State, c.Lockspaces[0].Peers, c.ConfiguredHostID = "absent", nil, 2
	r := Analyze([]HostView{a, b, c}, Options{})
	// b runs as 2 (c's) and will join as 1 (a's).
	want := []string{"duplicate_host_id a,b", "duplicate_host_id b,c", "host_id_not_applied b", "not_in_lockspace c"}
	if got := kinds(r); !slices.Equal(got, want) {
		t.Fatalf("findings\n got %q\nwant %q", got, want)
	}
}

// An agent whose host_id another host's sanlock does not see alive.
func TestNotSeenAlive(t *testing.T) {
	a, b := host("a", 1, 2), host("b", 2, 1)
	a.Lockspaces[0].Peers[1].State = "FAIL" // a sees b's host_id 2 failing
	r := Analyze([]HostView{a, b}, Options{})
	if got, want := kinds(r), []string{"not_seen_alive a,b"}; !slices.Equal(got, want) {
		t.Fatalf("findings %q, want %q", got, want)
	}
	if !strings.Contains(r.Findings[0].Message, "b is joined to the lockspace of VG vol as host_id 2, but sanlock on a does not see it alive") {
		t.Errorf("message %q", r.Findings[0].Message)
	}
	// a joined moments ago: it has not watched b renew yet.
	a.Lockspaces[0].Peers[1].State = "UNKNOWN"
	if got := kinds(Analyze([]HostView{a, b}, Options{})); len(got) != 0 {
		t.Errorf("b seen UNKNOWN: findings %q, want none", got)
	}
}

// Each host's own settings against its lease (io_timeout 10: the lease
// fails after 80 s): multipath queueing longer than that or forever, no kill
// hook, a disk whose guest would not pause on EIO.
func TestFenceBudget(t *testing.T) {
	good := func() *TimeoutFacts {
		return &TimeoutFacts{Multipath: multipath.QueueConfig{NoPathRetry: "12", PollingInterval: 5}, MultipathQueueSeconds: 60,
			KillCommand: "/usr/sbin/aos-agent kill-hook", QemuErrorPolicies: map[string]int{"stop": 2}, QemuDisksNotStopping: []string{}}
	}
	a, b, c, d := host("a", 1), host("b", 2), host("c", 3), host("d", 4)
	a.Timeouts, b.Timeouts, c.Timeouts, d.Timeouts = good(), good(), good(), good()
	b.Timeouts.Multipath.NoPathRetry, b.Timeouts.MultipathQueueSeconds = "queue", -1
	c.Timeouts.Multipath.NoPathRetry, c.Timeouts.MultipathQueueSeconds, c.Timeouts.KillCommand = "20", 100, ""
	d.Timeouts.QemuErrorPolicies = map[string]int{"stop": 1, "": 1}
	d.Timeouts.QemuDisksNotStopping = []string{"instance-7 vdb: error_policy unset (qemu reports the EIO), rerror_policy unset (qemu reports the EIO)"}
	for _, h := range []*HostView{&a, &b, &c, &d} {
		h.Lockspaces[0].Peers = nil // sanlock's view of the peers is not under test
	}
	r := Analyze([]HostView{a, b, c, d}, Options{})
	want := []string{"fence_budget b", "fence_budget c", "no_kill_command c", "qemu_error_policy d"}
	if got := kinds(r); !slices.Equal(got, want) {
		t.Fatalf("findings\n got %q\nwant %q", got, want)
	}
	if msg := r.Findings[1].Message; !strings.Contains(msg, "queues I/O 100 s after the last path fails (no_path_retry 20 × polling_interval 5 s), but its lease fails after 80 s") {
		t.Errorf("c's message: %q", msg)
	}
	var out strings.Builder
	r.Print(&out, time.Now())
	for _, line := range []string{"a     60 s (12 × 5 s)", "b     forever (queue)", "d     60 s (12 × 5 s)   /usr/sbin/aos-agent kill-hook  unset 1, stop 1"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out.String())
		}
	}
}
