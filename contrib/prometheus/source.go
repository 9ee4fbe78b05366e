package stampedeprom

import "github.com/stampede-cache/stampede"

// Source is what Metrics reads at each scrape: the cache's counters and its most requested
// keys. Any *stampede.Cache[V] is a Source.
type Source interface {
	// Stats returns the cache's cumulative counters.
	Stats() stampede.Stats
	// HotKeys returns the most requested keys of the last detection window, hottest first.
	HotKeys() []stampede.HotKey
}

// Observe makes every scrape read src, usually the cache, and export what it reads:
//
//   - its Stats as counters: stampede_hits_total by layer (l1, l2), stampede_misses_total,
//     stampede_loads_total, stampede_load_errors_total, stampede_lease_waits_total,
//     stampede_early_refreshes_total, stampede_stale_served_total,
//     stampede_redis_errors_total, stampede_fenced_loads_total, stampede_hot_keys_total, stampede_codec_errors_total,
//     stampede_replica_hits_total and stampede_replica_misses_total;
//   - its HotKeys in the gauge stampede_hot_key_requests_per_second, one series per key (see
//     Options.HotKeyLabel) with its rate in the last detection window: at most
//     stampede.HotKeys.TopK series, none when hot-key detection is off.
//
// Until Observe is called, or after it is called with nil, none of these is exported. A later
// call replaces src, for instance when the cache was replaced; the counters then start again
// from the new cache's, which Prometheus's rate() takes as a counter reset. A closed cache
// keeps its last counters and hot keys: call Observe(nil), or Unregister, when closing it.
//
// src is read once per scrape, on the scraping goroutine; it must be safe for concurrent use.
func (m *Metrics) Observe(src Source) {
	m.observed.Store(src)
}
