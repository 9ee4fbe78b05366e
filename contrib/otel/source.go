package stampedeotel

import "github.com/stampede-cache/stampede"

// Source is what Metrics observes at each collection: the cache's counters and its most
// requested keys. Any *stampede.Cache[V] is a Source.
type Source interface {
	// Stats returns the cache's cumulative counters.
	Stats() stampede.Stats
	// HotKeys returns the most requested keys of the last detection window, hottest first.
	HotKeys() []stampede.HotKey
}

// Observe makes every collection read src, usually the cache, and observe what it reads:
//
//   - its Stats as counters: stampede.hits by layer (l1, l2), stampede.misses,
//     stampede.loads, stampede.load.errors, stampede.lease.waits, stampede.early_refreshes,
//     stampede.stale_served, stampede.redis.errors, stampede.fenced_loads, stampede.hot_keys, stampede.codec_errors,
//     stampede.replica.hits and stampede.replica.misses;
//   - its HotKeys in the gauge stampede.hot_key.requests, one attribute set per key (see
//     Options.HotKeyLabel) with its rate in the last detection window: at most
//     stampede.HotKeys.TopK keys, none when hot-key detection is off.
//
// Until Observe is called, or after it is called with nil, none of these is observed. A later
// call replaces src, for instance when the cache was replaced; the counters then start again
// from the new cache's, which backends take as a counter reset. A closed cache keeps its last
// counters and hot keys: call Observe(nil), or Unregister, when closing it.
//
// src is read once per collection, on the collecting goroutine; it must be safe for concurrent
// use.
func (m *Metrics) Observe(src Source) {
	m.observed.Store(src)
}
