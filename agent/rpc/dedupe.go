package rpc

import (
	"container/list"
	"sync"
)

// dedupe remembers the most recent _unique_ids so a redelivered message (an
// ack lost in a connection drop, or a publisher retry) runs at most once.
// oslo keeps 16 per listener; we keep more because we consume concurrently.
type dedupe struct {
	mu    sync.Mutex
	max   int
	order *list.List
	seen  map[string]*list.Element
}

func newDedupe(max int) *dedupe {
	return &dedupe{max: max, order: list.New(), seen: map[string]*list.Element{}}
}

// add records id and reports whether it was new. An empty id (legacy
// senders) is always new.
func (d *dedupe) add(id string) bool {
	if id == "" {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, dup := d.seen[id]; dup {
		return false
	}
	d.seen[id] = d.order.PushBack(id)
	if d.order.Len() > d.max {
		oldest := d.order.Front()
		d.order.Remove(oldest)
		delete(d.seen, oldest.Value.(string))
	}
	return true
}

// forget drops id again, for a message whose ack failed: the broker will
// redeliver it and it must then run.
func (d *dedupe) forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.seen[id]; ok {
		d.order.Remove(e)
		delete(d.seen, id)
	}
}
