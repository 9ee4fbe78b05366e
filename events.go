package stampede

import (
	"time"

	"github.com/stampede-cache/stampede/internal/scripts"
)

// onMessage applies a message of the namespace's channel: a write evicts the key from the L1,
// a failed load elsewhere starts the key's back-off here too, and an InvalidateAll makes every
// older value stale.
func (c *Cache[V]) onMessage(m scripts.Message) {
	// Any message about a key ends another instance's refresh of it, or its lease.
	c.refreshes.clear(m.Key)
	switch m.Kind {
	case scripts.Filled, scripts.Evicted:
		if c.l1 != nil {
			c.l1.evict(m.Key, m.Gen)
		}
		if m.Kind == scripts.Filled {
			c.failures.clear(m.Key)
		}
	case scripts.AllInvalidated:
		c.topo.staleFrom(allStaleBefore(int64(m.Gen)))
	case scripts.Failed:
		if !m.NotFound {
			c.failures.record(m.Key, &remoteError{msg: m.Err}, time.Now().UnixNano(), c.rand(), true)
		}
	}
}

// onSubscribed runs when a subscription is confirmed or lost: messages sent while there is none
// are lost, so the L1 may hold values replaced meanwhile, and an InvalidateAll may have been
// missed.
func (c *Cache[V]) onSubscribed() {
	if c.l1 != nil {
		c.l1.clear()
	}
	if c.subscribed() && c.started.Load() { // New reads it itself
		c.life.goTracked(func() { c.readInvalidateAll(c.life.ctx) })
	}
}
