package stampede

import (
	"time"

	"github.com/stampede-cache/stampede/internal/scripts"
)

// SetRand replaces the cache's source of uniform numbers in [0, 1), used for jitter and early
// refresh.
func SetRand[V any](c *Cache[V], f func() float64) { c.rand = f }

// Subscribed reports whether the cache has a confirmed subscription.
func Subscribed[V any](c *Cache[V]) bool { return c.subscribed() }

// InL1 reports whether key has an entry in the cache's L1.
func InL1[V any](c *Cache[V], key string) bool {
	if c.l1 == nil {
		return false
	}
	e, ok := c.l1.cache.GetEntryQuietly(key)
	return ok && !e.Value.tomb
}

// RefreshesBusy returns how many keys the cache remembers as being refreshed, here or by
// another instance.
func RefreshesBusy[V any](c *Cache[V]) int {
	c.refreshes.mu.Lock()
	defer c.refreshes.mu.Unlock()
	return len(c.refreshes.busy)
}

// BackoffActive reports whether key's failure back-off holds now.
func BackoffActive[V any](c *Cache[V], key string) bool {
	_, ok := c.failures.active(key, time.Now().UnixNano())
	return ok
}

// WriteReplicas returns how many replicas a write waits for now.
func WriteReplicas[V any](c *Cache[V]) int { return c.ack().Replicas }

// ValueKey is the Redis key of key's value in c's namespace.
func ValueKey[V any](c *Cache[V], key string) string { return scripts.ValueKey(c.namespace, key) }

// DefaultEvictionWindow is WithEvictionWindow's default.
const DefaultEvictionWindow = defaultEvictionWindow

// EvictionSweepEvery is how often a cache flushes buffers whose flusher is lost.
const EvictionSweepEvery = evictionSweepEvery

// DropStripeSubscription closes the PubSub of the cache's first eviction stripe, as a lost
// connection would; it reports whether there was one.
func DropStripeSubscription[V any](c *Cache[V]) bool {
	if len(c.shards) == 0 {
		return false
	}
	n := c.shards[0]
	n.mu.Lock()
	ps := n.ps
	n.mu.Unlock()
	if ps == nil {
		return false
	}
	n.closePubSub(ps)
	return true
}
