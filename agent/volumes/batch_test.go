package volumes

import (
	"context"
	"fmt"
	"sync"
	"testing"
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
	if len(got) != 11 || !got["ex:first"] || !got["ex:9"] {
		t.Fatalf("results: %v", got)
	}
	if len(calls) != 2 || len(calls[1]) != 10 {
		t.Fatalf("want 2 calls (1 then a batch of 10), got %d: %v", len(calls), calls)
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
