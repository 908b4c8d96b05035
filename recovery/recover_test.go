package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/aos-agent/aos-agent/internal/fixture"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/multipath"
	"github.com/aos-agent/aos-agent/sanlock"
	"github.com/aos-agent/aos-agent/state"
	"github.com/aos-agent/aos-agent/virt"
)

var (
	showMap          = []string{"multipathd", "show", "map", "lun0", "json"}
	restoreQueueing  = []string{"multipathd", "restorequeueing", "map", "lun0"}
	deactivateBoth   = []string{"lvchange", "-an", "vol/lv1", "vol/lv2"}
	dropVol          = sanlock.DropArgv("vol")
	lockStartVol     = []string{"vgchange", "--lock-start", "vol"}
	activateLV1Ex    = []string{"lvchange", "-aey", "vol/lv1"}
	activateLV2Sh    = []string{"lvchange", "-asy", "vol/lv2"}
	lockedByOther    = "  LV locked by other host: vol/lv2\n  Failed to lock logical volume vol/lv2.\n" // lab run-twohost, h2
	noLockWarning    = "  Reading VG vol without a lock.\n"
	fencedJournalLVs = []FencedLV{
		{LV: "lv1", Device: "vol-lv1", Mode: state.Exclusive, UUID: lv1UUID, Fenced: true, LeaseVersion: 1},
		{LV: "lv2", Device: "vol-lv2", Mode: state.Shared, UUID: lv2UUID, Fenced: true},
	}
	refreshLV1  = []string{"lvchange", "--refresh", "vol/lv1"}
	lockctlInfo = sanlock.InfoArgv()
)

// stillLocked is the check before a refresh or a resume: the lockspace
// joined and healthy, lv1 ex and lv2 sh held here.
func stillLocked(t *testing.T) []run.Step {
	return []run.Step{
		{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
		{Argv: lockctlInfo, Stdout: fixture.Text(t, "lockctl-info.lab-healthy.txt")},
	}
}

func steps(parts ...[]run.Step) []run.Step { return slices.Concat(parts...) }

func virsh(args ...string) []string {
	return append([]string{"virsh", "-c", "qemu:///system"}, args...)
}

// statusLV1Version is the recorded status with lv1's exclusive lease at
// version ver (1 when recorded).
func statusLV1Version(t *testing.T, ver int) string {
	return strings.Replace(fixture.Text(t, "status-D.lab-healthy.txt"), ":70254592:1 p", fmt.Sprintf(":70254592:%d p", ver), 1)
}

// stillOpenUntilReacquired is a recovery of lv1 (ex, open by vm1) and lv2
// (sh, idle) up to the re-acquire of both, with lv1's lease at version
// lver afterwards.
func stillOpenUntilReacquired(t *testing.T, lver int) []run.Step {
	return []run.Step{
		{Argv: showMap, Stdout: fixture.Text(t, "show-map-lun0.lab.json")},
		{Argv: restoreQueueing, Stdout: "ok\n"},
		{Argv: deactivateBoth, Stderr: noLockWarning + "  Logical volume vol/lv1 in use.\n", ExitCode: 5},
		{Argv: table, Stdout: tableWithout(t, "vol-lv2")},
		{Argv: sanlockStatus, Stdout: statusDropped(t)},
		{Argv: dropVol},
		{Argv: lockStartVol},
		{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
		{Argv: activateLV1Ex},
		{Argv: sanlockStatus, Stdout: statusLV1Version(t, lver)},
		{Argv: activateLV2Sh},
	}
}

// vm1's disks: lv1 of the fenced VG and an image file.
const vm1Disks = " Target   Source\n------------------------------------------------\n vda      /dev/vol/lv1\n vdb      /var/lib/nova/instances/vm1/disk.config\n\n"

// withJournal writes the journal a finished fence of lv1 (ex) and lv2 (sh)
// leaves, in phase.
func withJournal(t *testing.T, d Deps, phase Phase) {
	t.Helper()
	j := &Journal{Version: journalVersion, VG: "vol", Phase: phase, QueueingDisabled: true, QueueingMap: "lun0",
		FailIfNoPathMap: "lun0", LVs: append([]FencedLV(nil), fencedJournalLVs...)}
	if err := writeJournal(d.StateDir, j); err != nil {
		t.Fatal(err)
	}
}

// tableWithout is the recorded post-fence table minus the LVs lvchange -an removed.
func tableWithout(t *testing.T, devs ...string) string {
	var keep []string
	for _, l := range strings.SplitAfter(fixture.Text(t, "table-after-fence.txt"), "\n") {
		name, _, _ := strings.Cut(l, ":")
		if l != "" && !slices.Contains(devs, name) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

// statusDropped is the recorded status with the lockspace gone (after
// lvmlockctl dropped it): the daemon and client records only.
func statusDropped(t *testing.T) string {
	s := fixture.Text(t, "status-D.lab-healthy.txt")
	return s[:strings.Index(s, "\ns lvm_vol:")+1]
}

// failedMap is `show map lun0 json` of the source-derived map whose paths
// all failed.
func failedMap(t *testing.T) string {
	maps, err := multipath.ParseMapsJSON([]byte(fixture.Text(t, "show-maps-failed.source.json")))
	if err != nil {
		t.Fatalf("failed map: err = %v, want nil", err)
	}
	if len(maps) != 1 {
		t.Fatalf("failed map: len(maps) = %v, want 1", len(maps))
	}
	b, err := json.Marshal(map[string]any{"map": maps[0]})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func heldLVs(t *testing.T, dir string) []state.HeldLV {
	t.Helper()
	h, err := state.OpenHeld(dir)
	if err != nil {
		t.Fatal(err)
	}
	return h.List()
}

// The whole sequence: lv1 comes back exclusive, lv2 was taken by another
// host and is lost; the journal goes and held.json keeps only lv1.
func TestRecoverSequence(t *testing.T) {
	r := run.NewScripted(t,
		run.Step{Argv: showMap, Stdout: fixture.Text(t, "show-map-lun0.lab.json")},
		run.Step{Argv: restoreQueueing, Stdout: "ok\n"},
		run.Step{Argv: deactivateBoth, Stderr: noLockWarning},
		run.Step{Argv: table, Stdout: tableWithout(t, "vol-lv1", "vol-lv2")},
		run.Step{Argv: sanlockStatus, Stdout: statusDropped(t)},
		run.Step{Argv: dropVol},
		run.Step{Argv: lockStartVol},
		run.Step{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
		run.Step{Argv: activateLV1Ex},
		run.Step{Argv: activateLV2Sh, Stderr: lockedByOther, ExitCode: 5},
	)
	d := deps(t, r)
	withJournal(t, d, PhaseFenced)
	rep, err := Recover(context.Background(), d, "vol")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Done {
		t.Fatal("report: rep.Done = false, want true")
	}
	if len(rep.Reacquired) != 1 {
		t.Fatalf("report: len(rep.Reacquired) = %v, want 1", len(rep.Reacquired))
	}
	if rep.Reacquired[0].LV != "lv1" {
		t.Fatalf("report: rep.Reacquired[0].LV = %q, want \"lv1\"", rep.Reacquired[0].LV)
	}
	if len(rep.Lost) != 1 {
		t.Fatalf("report: len(rep.Lost) = %v, want 1", len(rep.Lost))
	}
	if rep.Lost[0].LV != "lv2" {
		t.Fatalf("report: rep.Lost[0].LV = %q, want \"lv2\"", rep.Lost[0].LV)
	}
	if !strings.Contains(rep.String(), "LOST lv2") {
		t.Fatalf("report text:\n%s", rep)
	}
	if _, ok, _ := ReadJournal(d.StateDir, "vol"); ok {
		t.Fatal("journal kept")
	}
	h := heldLVs(t, d.StateDir)
	if len(h) != 1 {
		t.Fatalf("held %+v, want lv1 only", h)
	}
	if h[0].Since.IsZero() {
		t.Error("held lv1 without the time its lock was taken")
	}
	h[0].Since = time.Time{}
	if want := (state.HeldLV{VG: "vol", LV: "lv1", UUID: lv1UUID, Mode: state.Exclusive}); h[0] != want {
		t.Fatalf("held %+v, want %+v", h[0], want)
	}
}

// No active path: refused before any change, journal untouched.
func TestRecoverRefusesWithoutPaths(t *testing.T) {
	r := run.NewScripted(t, run.Step{Argv: showMap, Stdout: failedMap(t)})
	d := deps(t, r)
	withJournal(t, d, PhaseFenced)
	if _, err := Recover(context.Background(), d, "vol"); !errors.Is(err, ErrPathsDown) {
		t.Fatalf("err %v", err)
	}
	{
		j := readJournal(t, d.StateDir)
		if j.Phase != PhaseFenced {
			t.Fatalf("journal: j.Phase = %v, want %v", j.Phase, PhaseFenced)
		}
		if !j.QueueingDisabled {
			t.Fatal("journal: j.QueueingDisabled = false, want true")
		}
	}
}

// A fence interrupted mid-way with an LV still linear: refused.
func TestRecoverRefusesUnverifiedFence(t *testing.T) {
	r := run.NewScripted(t, run.Step{Argv: table, Stdout: fixture.Text(t, "table-before-fence.txt")})
	d := deps(t, r)
	withJournal(t, d, PhaseFencing)
	if _, err := Recover(context.Background(), d, "vol"); !errors.Is(err, ErrFenceUnverified) {
		t.Fatalf("err %v", err)
	}
	if j := readJournal(t, d.StateDir); j.Phase != PhaseFencing {
		t.Fatalf("journal %+v", j)
	}
}

// A re-acquire that times out keeps the journal; the re-run skips what is
// done (queueing, the lockspace, lv2) and finishes lv1.
func TestRecoverFailureKeepsJournalAndReRunConverges(t *testing.T) {
	r := run.NewScripted(t,
		run.Step{Argv: showMap, Stdout: fixture.Text(t, "show-map-lun0.lab.json")},
		run.Step{Argv: restoreQueueing, Stdout: "ok\n"},
		run.Step{Argv: deactivateBoth},
		run.Step{Argv: table, Stdout: tableWithout(t, "vol-lv1", "vol-lv2")},
		run.Step{Argv: sanlockStatus, Stdout: statusDropped(t)},
		run.Step{Argv: dropVol},
		run.Step{Argv: lockStartVol},
		run.Step{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
		run.Step{Argv: activateLV1Ex, Err: timedOut(activateLV1Ex)},
		run.Step{Argv: activateLV2Sh},
		// re-run
		run.Step{Argv: showMap, Stdout: fixture.Text(t, "show-map-lun0.lab.json")},
		run.Step{Argv: []string{"lvchange", "-an", "vol/lv1"}},
		run.Step{Argv: table, Stdout: tableWithout(t, "vol-lv1", "vol-lv2")},
		run.Step{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
		run.Step{Argv: activateLV1Ex},
	)
	d := deps(t, r)
	withJournal(t, d, PhaseFenced)
	rep, err := Recover(context.Background(), d, "vol")
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("first run: err = %v, want ErrIncomplete", err)
	}
	if rep.Done {
		t.Fatal("first run: rep.Done = true, want false")
	}
	if len(rep.Pending) != 1 {
		t.Fatalf("first run: len(rep.Pending) = %v, want 1", len(rep.Pending))
	}
	if rep.Pending[0].LV != "lv1" {
		t.Fatalf("first run: rep.Pending[0].LV = %q, want \"lv1\"", rep.Pending[0].LV)
	}
	{
		j := readJournal(t, d.StateDir)
		if j.Phase != PhaseRecovering {
			t.Fatalf("journal: j.Phase = %v, want %v", j.Phase, PhaseRecovering)
		}
		if j.QueueingDisabled {
			t.Fatal("journal: j.QueueingDisabled = true, want false")
		}
		if j.LVs[1].Outcome != OutcomeReacquired {
			t.Fatalf("journal: j.LVs[1].Outcome = %v, want %v", j.LVs[1].Outcome, OutcomeReacquired)
		}
	}
	rep, err = Recover(context.Background(), d, "vol")
	if err != nil {
		t.Fatalf("re-run: err = %v, want nil", err)
	}
	if !rep.Done {
		t.Fatal("re-run: rep.Done = false, want true")
	}
	if len(rep.Reacquired) != 2 {
		t.Fatalf("re-run: len(rep.Reacquired) = %v, want 2", len(rep.Reacquired))
	}
	if h := heldLVs(t, d.StateDir); len(h) != 2 {
		t.Fatalf("held %+v", h)
	}
}

// An LV lvchange -an left with a live table (not the error target) stops
// recovery before the lockspace is touched.
func TestRecoverStopsOnLiveTableAfterDeactivate(t *testing.T) {
	r := run.NewScripted(t,
		run.Step{Argv: showMap, Stdout: fixture.Text(t, "show-map-lun0.lab.json")},
		run.Step{Argv: restoreQueueing, Stdout: "ok\n"},
		run.Step{Argv: deactivateBoth},
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-before-fence.txt")},
	)
	d := deps(t, r)
	withJournal(t, d, PhaseFenced)
	if _, err := Recover(context.Background(), d, "vol"); !errors.Is(err, ErrFenceUnverified) {
		t.Fatalf("err %v", err)
	}
	if j := readJournal(t, d.StateDir); j.Phase != PhaseRecovering {
		t.Fatalf("journal %+v", j)
	}
}

// No journal: nothing was fenced, nothing runs.
func TestRecoverWithoutJournal(t *testing.T) {
	d := deps(t, run.NewScripted(t))
	{
		rep, err := Recover(context.Background(), d, "vol")
		if err != nil {
			t.Fatalf("err = %v, want nil", err)
		}
		if !rep.Done {
			t.Fatal("rep.Done = false, want true")
		}
	}
}

// lv1 is still open (its VM paused on the error table): lvchange -an fails
// for it, its device keeps the error target, recovery goes on and the
// report tells the operator to refresh it before restarting the VM.
func TestRecoverLVStillOpen(t *testing.T) {
	r := run.NewScripted(t, steps(stillOpenUntilReacquired(t, 2), stillLocked(t), []run.Step{
		{Argv: refreshLV1},
		{Argv: virsh("list", "--all", "--name"), Stdout: "vm1\nvm2\nvm3\n\n"},
		{Argv: virsh("domblklist", "vm1"), Stdout: vm1Disks},
		{Argv: virsh("domstate", "--reason", "vm1"), Stdout: "paused (I/O error)\n\n"}},
		stillLocked(t), []run.Step{
			{Argv: virsh("resume", "vm1"), Stdout: "Domain 'vm1' resumed\n\n"},
			{Argv: virsh("domblklist", "vm2"), Stdout: " Target   Source\n------------------------\n vda      /dev/other/lv1\n\n"},
			{Argv: virsh("domblklist", "vm3"), ExitCode: 1, Stderr: "error: failed to get domain 'vm3'\n"},
		})...)
	d := deps(t, r)
	d.LibvirtURI = "qemu:///system"
	withJournal(t, d, PhaseFenced)
	rep, err := Recover(context.Background(), d, "vol")
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if !rep.Done {
		t.Fatal("rep.Done = false, want true")
	}
	if len(rep.Reacquired) != 2 {
		t.Fatalf("len(rep.Reacquired) = %v, want 2", len(rep.Reacquired))
	}
	if !rep.Reacquired[0].InUse {
		t.Fatal("rep.Reacquired[0].InUse = false, want true")
	}
	if !rep.Reacquired[0].Refreshed {
		t.Fatal("rep.Reacquired[0].Refreshed = false, want true")
	}
	if rep.Reacquired[1].InUse {
		t.Fatal("rep.Reacquired[1].InUse = true, want false")
	}
	want := DomainOutcome{Name: "vm1", LVs: []string{"lv1"}, State: "paused (I/O error)", Outcome: DomainResumed}
	if len(rep.Domains) != 1 {
		t.Fatalf("domains: len(rep.Domains) = %v, want 1", len(rep.Domains))
	}
	if !reflect.DeepEqual(rep.Domains[0], want) {
		t.Fatal("domains: reflect.DeepEqual(rep.Domains[0], want) = false, want true")
	}
	if !strings.Contains(rep.String(), "domain vm1 ([lv1], was paused (I/O error)): resumed") {
		t.Fatalf("report text:\n%s", rep)
	}
}

// Another host held lv1 while h1 was fenced (its lease version moved by
// two): lv1 is re-locked but keeps the error table, and vm1 stays paused on
// data that host may have written.
func TestRecoverInUseLVHeldElsewhereMeanwhile(t *testing.T) {
	r := run.NewScripted(t, append(stillOpenUntilReacquired(t, 3),
		run.Step{Argv: virsh("list", "--all", "--name"), Stdout: "vm1\n\n"},
		run.Step{Argv: virsh("domblklist", "vm1"), Stdout: vm1Disks},
		run.Step{Argv: virsh("domstate", "--reason", "vm1"), Stdout: "paused (I/O error)\n\n"},
	)...)
	d := deps(t, r)
	d.LibvirtURI = "qemu:///system"
	withJournal(t, d, PhaseFenced)
	rep, err := Recover(context.Background(), d, "vol")
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if !rep.Done {
		t.Fatal("rep.Done = false, want true")
	}
	if rep.Reacquired[0].Refreshed {
		t.Fatal("rep.Reacquired[0].Refreshed = true, want false")
	}
	if !strings.Contains(rep.Reacquired[0].Stale, "version 1 at the fence, 3 now") {
		t.Fatalf("rep.Reacquired[0].Stale = %q, want it to contain \"version 1 at the fence, 3 now\"", rep.Reacquired[0].Stale)
	}
	if len(rep.Domains) != 1 {
		t.Fatalf("domains: len(rep.Domains) = %v, want 1", len(rep.Domains))
	}
	if rep.Domains[0].Outcome != DomainKeptPaused {
		t.Fatalf("domains: rep.Domains[0].Outcome = %v, want %v", rep.Domains[0].Outcome, DomainKeptPaused)
	}
	if !strings.Contains(rep.Domains[0].Why, "another host held it meanwhile") {
		t.Fatalf("domains: rep.Domains[0].Why = %q, want it to contain \"another host held it meanwhile\"", rep.Domains[0].Why)
	}
	{
		s := rep.String()
		if !strings.Contains(s, "STALE") {
			t.Fatalf("report text:\\n: s = %q, want it to contain \"STALE\"", s)
		}
		if !strings.Contains(s, "kept-paused") {
			t.Fatalf("report text:\\n: s = %q, want it to contain \"kept-paused\"", s)
		}
	}
}

// A VM that did no I/O during the outage is still running on an LV another
// host now holds: it is suspended, never left to run into the error table
// unnoticed. A VM an operator paused is left paused.
func TestRecoverDomainsOfLostLVAndOperatorPause(t *testing.T) {
	r := run.NewScripted(t,
		run.Step{Argv: showMap, Stdout: fixture.Text(t, "show-map-lun0.lab.json")},
		run.Step{Argv: restoreQueueing, Stdout: "ok\n"},
		run.Step{Argv: deactivateBoth, Stderr: noLockWarning + "  Logical volume vol/lv1 in use.\n  Logical volume vol/lv2 in use.\n", ExitCode: 5},
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-after-fence.txt")},
		run.Step{Argv: sanlockStatus, Stdout: statusDropped(t)},
		run.Step{Argv: dropVol},
		run.Step{Argv: lockStartVol},
		run.Step{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
		run.Step{Argv: activateLV1Ex, ExitCode: 5, Stderr: strings.ReplaceAll(lockedByOther, "lv2", "lv1")},
		run.Step{Argv: activateLV2Sh},
		stillLocked(t)[0], stillLocked(t)[1],
		run.Step{Argv: []string{"lvchange", "--refresh", "vol/lv2"}},
		run.Step{Argv: virsh("list", "--all", "--name"), Stdout: "vm1\nvm2\n\n"},
		run.Step{Argv: virsh("domblklist", "vm1"), Stdout: vm1Disks},
		run.Step{Argv: virsh("domstate", "--reason", "vm1"), Stdout: "running (booted)\n\n"},
		run.Step{Argv: virsh("suspend", "vm1"), Stdout: "Domain 'vm1' suspended\n\n"},
		run.Step{Argv: virsh("domblklist", "vm2"), Stdout: " Target   Source\n------------------------\n vda      /dev/mapper/vol-lv2\n\n"},
		run.Step{Argv: virsh("domstate", "--reason", "vm2"), Stdout: "paused (user)\n\n"},
	)
	d := deps(t, r)
	d.LibvirtURI = "qemu:///system"
	withJournal(t, d, PhaseFenced)
	rep, err := Recover(context.Background(), d, "vol")
	if err != nil {
		t.Fatalf("err = %v, want nil", err)
	}
	if len(rep.Lost) != 1 {
		t.Fatalf("len(rep.Lost) = %v, want 1", len(rep.Lost))
	}
	if len(rep.Reacquired) != 1 {
		t.Fatalf("len(rep.Reacquired) = %v, want 1", len(rep.Reacquired))
	}
	if !rep.Reacquired[0].Refreshed {
		t.Fatal("rep.Reacquired[0].Refreshed = false, want true")
	}
	got := map[string]string{}
	for _, d := range rep.Domains {
		got[d.Name] = d.Outcome
	}
	if got["vm1"] != DomainKeptPaused {
		t.Fatalf("domains: got[\"vm1\"] = %v, want %v", got["vm1"], DomainKeptPaused)
	}
	if got["vm2"] != DomainLeftPaused {
		t.Fatalf("domains: got[\"vm2\"] = %v, want %v", got["vm2"], DomainLeftPaused)
	}
}

// libvirtd not answering: the LVs are settled, the domains are not, the
// journal stays for a re-run, which only handles the domains.
func TestRecoverRetriesDomainsWhenLibvirtIsDown(t *testing.T) {
	r := run.NewScripted(t, steps(stillOpenUntilReacquired(t, 2), stillLocked(t), []run.Step{
		{Argv: refreshLV1},
		{Argv: virsh("list", "--all", "--name"), ExitCode: 1,
			Stderr: "error: failed to connect to the hypervisor\nerror: Failed to connect socket to '/var/run/libvirt/libvirt-sock': Connection refused\n"},
		{Argv: showMap, Stdout: fixture.Text(t, "show-map-lun0.lab.json")},
		{Argv: sanlockStatus, Stdout: statusLV1Version(t, 2)},
		{Argv: virsh("list", "--all", "--name"), Stdout: "vm1\n\n"},
		{Argv: virsh("domblklist", "vm1"), Stdout: vm1Disks},
		{Argv: virsh("domstate", "--reason", "vm1"), Stdout: "paused (I/O error)\n\n"}},
		stillLocked(t), []run.Step{
			{Argv: virsh("resume", "vm1"), Stdout: "Domain 'vm1' resumed\n\n"},
		})...)
	d := deps(t, r)
	d.LibvirtURI = "qemu:///system"
	withJournal(t, d, PhaseFenced)
	rep, err := Recover(context.Background(), d, "vol")
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("err = %v, want ErrIncomplete", err)
	}
	if !errors.Is(err, virt.ErrUnavailable) {
		t.Fatalf("err = %v, want virt.ErrUnavailable", err)
	}
	if rep.Done {
		t.Fatal("rep.Done = true, want false")
	}
	rep, err = Recover(context.Background(), d, "vol")
	if err != nil {
		t.Fatalf("re-run: err = %v, want nil", err)
	}
	if !rep.Done {
		t.Fatal("re-run: rep.Done = false, want true")
	}
	if len(rep.Domains) != 1 {
		t.Fatalf("re-run: len(rep.Domains) = %v, want 1", len(rep.Domains))
	}
	if rep.Domains[0].Outcome != DomainResumed {
		t.Fatalf("re-run: rep.Domains[0].Outcome = %v, want %v", rep.Domains[0].Outcome, DomainResumed)
	}
}

// Two recoveries of one VG never interleave: the second is refused before it
// runs anything (the scripted runner has no steps).
func TestRecoverRefusesWhileAnotherRuns(t *testing.T) {
	r := run.NewScripted(t)
	d := deps(t, r)
	withJournal(t, d, PhaseFenced)
	release, err := lockRecovery(d.StateDir, "vol")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Recover(context.Background(), d, "vol"); !errors.Is(err, ErrBusy) {
		t.Fatalf("err %v", err)
	}
	release()
	release, err = lockRecovery(d.StateDir, "vol")
	if err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	release()
}

// lvmlockd no longer holds lv1 when its refresh is due (lost between the
// re-acquire and the refresh): the table stays on the error target, vm1
// stays paused, and the journal is kept for a re-run.
func TestRecoverRefreshNeedsTheLockStillHeld(t *testing.T) {
	noLV1 := strings.Replace(fixture.Text(t, "lockctl-info.lab-healthy.txt"), "LK LV ex "+lv1UUID+"\n", "", 1)
	r := run.NewScripted(t, steps(stillOpenUntilReacquired(t, 2), []run.Step{
		{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
		{Argv: lockctlInfo, Stdout: noLV1},
		{Argv: virsh("list", "--all", "--name"), Stdout: "vm1\n\n"},
		{Argv: virsh("domblklist", "vm1"), Stdout: vm1Disks},
		{Argv: virsh("domstate", "--reason", "vm1"), Stdout: "paused (I/O error)\n\n"},
	})...)
	d := deps(t, r)
	d.LibvirtURI = "qemu:///system"
	withJournal(t, d, PhaseFenced)
	rep, err := Recover(context.Background(), d, "vol")
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("got: err = %v, want ErrIncomplete", err)
	}
	if !errors.Is(err, ErrNotLocked) {
		t.Fatalf("got: err = %v, want ErrNotLocked", err)
	}
	if rep.Done {
		t.Fatal("got: rep.Done = true, want false")
	}
	if rep.Reacquired[0].Refreshed {
		t.Fatalf("lv1 refreshed without its lock: %+v", rep.Reacquired[0])
	}
	if len(rep.Domains) != 1 {
		t.Fatalf("domains: len(rep.Domains) = %v, want 1", len(rep.Domains))
	}
	if rep.Domains[0].Outcome != DomainKeptPaused {
		t.Fatalf("domains: rep.Domains[0].Outcome = %v, want %v", rep.Domains[0].Outcome, DomainKeptPaused)
	}
	if j := readJournal(t, d.StateDir); j.Phase != PhaseRecovering {
		t.Fatalf("journal %+v", j)
	}
}

// lv2 was deleted by another host during the outage: a real kernel keeps
// its device here, which LVM no longer knows; recovery removes it with
// dmsetup and reports it GONE. lv1, deleted too, is held open by its VM:
// its device stays on the error target.
func TestRecoverLVsDeletedDuringTheOutage(t *testing.T) {
	gone := func(lv string) string { return "  Failed to find logical volume \"vol/" + lv + "\"\n" }
	r := run.NewScripted(t,
		run.Step{Argv: showMap, Stdout: fixture.Text(t, "show-map-lun0.lab.json")},
		run.Step{Argv: restoreQueueing, Stdout: "ok\n"},
		run.Step{Argv: deactivateBoth, Stderr: gone("lv1") + gone("lv2"), ExitCode: 5},
		run.Step{Argv: table, Stdout: fixture.Text(t, "table-after-fence.txt")},
		run.Step{Argv: sanlockStatus, Stdout: statusDropped(t)},
		run.Step{Argv: dropVol},
		run.Step{Argv: lockStartVol},
		run.Step{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
		run.Step{Argv: activateLV1Ex, ExitCode: 5, Stderr: gone("lv1")},
		run.Step{Argv: []string{"dmsetup", "remove", "vol-lv1"}, ExitCode: 1, Stderr: "device-mapper: remove ioctl on vol-lv1  failed: Device or resource busy\nCommand failed.\n"},
		run.Step{Argv: activateLV2Sh, ExitCode: 5, Stderr: gone("lv2")},
		run.Step{Argv: []string{"dmsetup", "remove", "vol-lv2"}},
	)
	d := deps(t, r)
	withJournal(t, d, PhaseFenced)
	rep, err := Recover(context.Background(), d, "vol")
	if err != nil {
		t.Fatalf("got: err = %v, want nil", err)
	}
	if !rep.Done {
		t.Fatal("got: rep.Done = false, want true")
	}
	if len(rep.Gone) != 2 {
		t.Fatalf("got: len(rep.Gone) = %v, want 2", len(rep.Gone))
	}
	if !strings.Contains(rep.String(), "GONE lv1: deleted by another host") {
		t.Fatalf("report text:\n%s", rep)
	}
	if h := heldLVs(t, d.StateDir); len(h) != 0 {
		t.Fatalf("held.json after: %+v", h)
	}
}

// Both LVs were kept open through the fence: one lock check and one
// lvchange reload them together, and an LV whose lock lvmlockd no longer
// holds here (lv2) is left out of the reload, on the error target.
func TestRecoverRefreshesInUseLVsTogether(t *testing.T) {
	noLV2 := strings.Replace(fixture.Text(t, "lockctl-info.lab-healthy.txt"), "LK LV sh "+lv2UUID+"\n", "", 1)
	if noLV2 == fixture.Text(t, "lockctl-info.lab-healthy.txt") {
		t.Fatal("fixture: lv2's shared lock not found in lockctl-info.lab-healthy.txt")
	}
	reacquired := stillOpenUntilReacquired(t, 2)
	reacquired[2] = run.Step{Argv: deactivateBoth, Stderr: noLockWarning + "  Logical volume vol/lv1 in use.\n  Logical volume vol/lv2 in use.\n", ExitCode: 5}
	reacquired[3] = run.Step{Argv: table, Stdout: tableWithout(t)}
	r := run.NewScripted(t, steps(reacquired, []run.Step{
		{Argv: sanlockStatus, Stdout: fixture.Text(t, "status-D.lab-healthy.txt")},
		{Argv: lockctlInfo, Stdout: noLV2},
		{Argv: refreshLV1},
	})...)
	d := deps(t, r)
	withJournal(t, d, PhaseFenced)
	rep, err := Recover(context.Background(), d, "vol")
	if !errors.Is(err, ErrIncomplete) || !errors.Is(err, ErrNotLocked) {
		t.Fatalf("err = %v, want ErrIncomplete and ErrNotLocked", err)
	}
	if len(rep.Reacquired) != 2 || !rep.Reacquired[0].InUse || !rep.Reacquired[1].InUse {
		t.Fatalf("re-acquired %+v, want lv1 and lv2 both in use", rep.Reacquired)
	}
	if !rep.Reacquired[0].Refreshed {
		t.Fatalf("lv1 not refreshed: %+v", rep.Reacquired[0])
	}
	if rep.Reacquired[1].Refreshed || !strings.Contains(rep.Reacquired[1].Error, "lvmlockd holds") {
		t.Fatalf("lv2 refreshed without its lock, or no reason given: %+v", rep.Reacquired[1])
	}
}
