package volumes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aos-agent/aos-agent/errdefs"
	"github.com/aos-agent/aos-agent/internal/run"
	"github.com/aos-agent/aos-agent/lvm"
	"github.com/aos-agent/aos-agent/state"
)

func TestGroupCommitBatchesWhileBusy(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var calls [][]string
	g := newGroupCommit(50, func(ctx context.Context, key string, items []string) []string {
		mu.Lock()
		calls = append(calls, items)
		first := len(calls) == 1
		mu.Unlock()
		if first {
			<-release // hold the first call so the others queue behind it
		}
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = key + ":" + it
		}
		return out
	})
	results := make(chan string, 11)
	go func() { results <- g.do(context.Background(), "ex", "first") }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(calls) == 1 })
	for i := 0; i < 10; i++ {
		go func(i int) { results <- g.do(context.Background(), "ex", fmt.Sprint(i)) }(i)
	}
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.queue["ex"]) == 10 })
	close(release)
	got := map[string]bool{}
	for i := 0; i < 11; i++ {
		got[<-results] = true
	}
	if len(got) != 11 {
		t.Fatalf("results: len(got) = %v, want 11", len(got))
	}
	if !got["ex:first"] {
		t.Fatal("results: got[\"ex:first\"] = false, want true")
	}
	if !got["ex:9"] {
		t.Fatal("results: got[\"ex:9\"] = false, want true")
	}
	if len(calls) != 2 {
		t.Fatalf("want 2 calls (1 then a batch of 10), got: len(calls) = %v, want 2", len(calls))
	}
	if len(calls[1]) != 10 {
		t.Fatalf("want 2 calls (1 then a batch of 10), got: len(calls[1]) = %v, want 10", len(calls[1]))
	}
}

func TestGroupCommitCapsBatchSize(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var sizes []int
	g := newGroupCommit(3, func(ctx context.Context, key int, items []int) []int {
		mu.Lock()
		sizes = append(sizes, len(items))
		first := len(sizes) == 1
		mu.Unlock()
		if first {
			<-release
		}
		return items
	})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); g.do(context.Background(), 1, 0) }()
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(sizes) == 1 })
	for i := 1; i <= 7; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if r := g.do(context.Background(), 1, i); r != i {
				t.Errorf("result %d for item %d", r, i)
			}
		}(i)
	}
	waitFor(t, func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.queue[1]) == 7 })
	close(release)
	wg.Wait()
	if fmt.Sprint(sizes) != "[1 3 3 1]" {
		t.Fatalf("batch sizes %v", sizes)
	}
}

func TestKeyedMutex(t *testing.T) {
	k := newKeyedMutex()
	unlockA, err := k.lock(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	unlockB, err := k.lock(context.Background(), "b") // other key: not blocked
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := k.lock(ctx, "a"); err == nil {
		t.Fatal("lock of a held key must wait and honour ctx")
	}
	got := make(chan struct{})
	go func() {
		u, _ := k.lock(context.Background(), "a")
		u()
		close(got)
	}()
	unlockA()
	<-got
	unlockB()
	if len(k.locks) != 0 {
		t.Fatalf("entries leaked: %v", k.locks)
	}
}

// The batch records what it activated in one held.json write; when that
// write fails, every caller whose LV was activated hears it (the LV is
// locked but lockstart would not re-activate it after a reboot), and a
// failed deactivation leaves the record alone.
func TestBatchHeldRecordFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	held, err := state.OpenHeld(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := run.NewScripted(t,
		run.Step{Argv: argv("lvchange -aey vol/lv1")},
		run.Step{Argv: argv("lvchange -aey vol/lv2")},
		run.Step{Argv: argv("lvchange -an vol/lv2"), ExitCode: 5, Stderr: "  Logical volume vol/lv2 in use.\n"},
	)
	svc, err := New(lvm.New(r, lvm.Options{VolumeGroups: []string{"vol"}}), nil, nil, held, Options{VolumeGroups: []string{"vol"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := svc.Activate(ctx, Ref{VG: "vol", LV: "lv1"}, Exclusive); err != nil {
		t.Fatal(err)
	}
	{
		h, ok := held.Get("vol", "lv1")
		if !ok {
			t.Fatal("lv1 not recorded: ok = false, want true")
		}
		if h.Mode != state.Exclusive {
			t.Fatalf("lv1 not recorded: h.Mode = %v, want %v", h.Mode, state.Exclusive)
		}
	}
	// The state dir becomes unwritable (a regular file where it was).
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	{
		_, err := svc.Activate(ctx, Ref{VG: "vol", LV: "lv2"}, Exclusive)
		if err == nil {
			t.Fatal("activation whose record failed: err = nil, want non-nil")
		}
		if !strings.Contains(err.Error(), "activated in VG vol but not recorded") {
			t.Fatalf("activation whose record failed: err.Error() = %q, want it to contain \"activated in VG vol but not recorded\"", err.Error())
		}
	}
	if err := svc.Deactivate(ctx, Ref{VG: "vol", LV: "lv2"}); !errors.Is(err, errdefs.ErrVolumeInUse) {
		t.Fatalf("deactivation of an open LV: %v", err)
	}
}
