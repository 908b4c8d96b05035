package sim

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Clock is the simulator's time source. Lease renewal, expiry, host resets
// and lockspace joins all run on it, so tests either step it by hand
// (ManualClock) or let sim time run faster than real time (ScaledClock).
type Clock interface {
	Now() time.Time
	// AfterFunc runs f once d of sim time has passed; stop cancels it.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// sleep waits d of sim time or until ctx ends.
func sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	done := make(chan struct{})
	stop := c.AfterFunc(d, func() { close(done) })
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		stop()
		return ctx.Err()
	}
}

// ScaledClock runs Scale times faster than the wall clock: with Scale 100 an
// io_timeout of 10 s passes in 0.1 s.
type ScaledClock struct {
	start time.Time
	base  time.Time
	scale float64
}

// NewScaledClock starts sim time at base.
func NewScaledClock(base time.Time, scale float64) *ScaledClock {
	if scale <= 0 {
		scale = 1
	}
	return &ScaledClock{start: time.Now(), base: base, scale: scale}
}

func (c *ScaledClock) Now() time.Time {
	return c.base.Add(time.Duration(float64(time.Since(c.start)) * c.scale))
}

func (c *ScaledClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(time.Duration(float64(d)/c.scale), f).Stop
}

// ManualClock only moves when Advance is called; timers fire synchronously
// inside Advance, in due order, so timelines are deterministic.
type ManualClock struct {
	mu     sync.Mutex
	now    time.Time
	seq    int
	timers map[int]*manualTimer
}

type manualTimer struct {
	at  time.Time
	seq int
	f   func()
}

// NewManualClock starts at base.
func NewManualClock(base time.Time) *ManualClock {
	return &ManualClock{now: base, timers: map[int]*manualTimer{}}
}

func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *ManualClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	id := c.seq
	c.timers[id] = &manualTimer{at: c.now.Add(d), seq: id, f: f}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.timers[id]
		delete(c.timers, id)
		return ok
	}
}

// Advance moves time forward by d, firing every timer that falls due, each
// with the clock set to its due time (a timer may schedule further timers).
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		var due []*manualTimer
		for _, t := range c.timers {
			if !t.at.After(end) {
				due = append(due, t)
			}
		}
		if len(due) == 0 {
			break
		}
		sort.Slice(due, func(i, j int) bool {
			if due[i].at.Equal(due[j].at) {
				return due[i].seq < due[j].seq
			}
			return due[i].at.Before(due[j].at)
		})
		t := due[0]
		delete(c.timers, t.seq)
		if t.at.After(c.now) {
			c.now = t.at
		}
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}
