package stampede

import "time"

// jittered takes a random part, up to the cache's jitter fraction, off ttl, so that values
// written together expire apart. It never lengthens ttl: a TTL is the promise of how stale a
// value may be. The result is at least a millisecond, Redis's precision.
func (c *Cache[V]) jittered(ttl time.Duration) time.Duration {
	if c.jitter == 0 {
		return ttl
	}
	off := time.Duration(float64(ttl) * c.jitter * c.rand())
	return max(ttl-off, time.Millisecond)
}
