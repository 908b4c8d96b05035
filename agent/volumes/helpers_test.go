package volumes

import (
	"runtime"
	"testing"
	"time"
)

// waitFor polls a condition that other goroutines will make true; it bounds
// the wait only to turn a deadlock into a failure, and asserts no timing.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never became true")
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}
