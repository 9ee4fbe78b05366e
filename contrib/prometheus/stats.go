package stampedeprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-cache/stampede"
)

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
	m.src.Store(&src)
}

// statDescs describe the counters of stampede.Stats.
type statDescs struct {
	hits                                     *prometheus.Desc // by layer
	misses, loads, loadErrors, leaseWaits    *prometheus.Desc
	earlyRefreshes, staleServed, redisErrors *prometheus.Desc
	fencedLoads, hotKeys, codecErrors        *prometheus.Desc
	replicaHits, replicaMisses               *prometheus.Desc
}

func newStatDescs(cl prometheus.Labels) statDescs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, cl)
	}
	return statDescs{
		hits: d("stampede_hits_total",
			"Gets answered from a cache layer, fresh or stale: l1 (in-process) or l2 (Redis). "+
				"Every Get that does not fail first is an l1 hit, an l2 hit or a miss.", "layer"),
		misses: d("stampede_misses_total",
			"Gets that found no servable value and waited for a load: their own, another caller's "+
				"in this instance, or another instance's."),
		loads: d("stampede_loads_total",
			"Calls of a loader (queries of the source of truth) by this instance."),
		loadErrors: d("stampede_load_errors_total",
			"Loads that failed; a not-found is not a failure."),
		leaseWaits: d("stampede_lease_waits_total",
			"Times this instance waited for a load that another instance held the lease of."),
		earlyRefreshes: d("stampede_early_refreshes_total",
			"Background refreshes started: early refresh and stale-while-revalidate."),
		staleServed: d("stampede_stale_served_total",
			"Gets answered with a stale value (stale-while-revalidate or stale-if-error)."),
		redisErrors: d("stampede_redis_errors_total",
			"Redis calls of the cache that failed, on the paths of reads and writes."),
		fencedLoads: d("stampede_fenced_loads_total",
			"Loads whose value was not written because a write to the key came after the load began."),
		hotKeys: d("stampede_hot_keys_total",
			"Hot-key reports: one per key over the threshold per detection window."),
		replicaHits: d("stampede_replica_hits_total",
			"Gets answered from a replica of a replicated hot key; they count among the l2 hits too."),
		replicaMisses: d("stampede_replica_misses_total",
			"Reads of a replica that found nothing servable, so that the primary key was read instead."),
		codecErrors: d("stampede_codec_errors_total",
			"Values the codec failed to encode or decode, panics included."),
	}
}

func (d *statDescs) describe(ch chan<- *prometheus.Desc) {
	for _, desc := range []*prometheus.Desc{d.hits, d.misses, d.loads, d.loadErrors, d.leaseWaits,
		d.earlyRefreshes, d.staleServed, d.redisErrors, d.fencedLoads, d.hotKeys, d.replicaHits,
		d.replicaMisses, d.codecErrors} {
		ch <- desc
	}
}

func (d *statDescs) collect(ch chan<- prometheus.Metric, s stampede.Stats) {
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	counter(d.hits, s.L1Hits, "l1")
	counter(d.hits, s.L2Hits, "l2")
	counter(d.misses, s.Misses)
	counter(d.loads, s.Loads)
	counter(d.loadErrors, s.LoadErrors)
	counter(d.leaseWaits, s.LeaseWaits)
	counter(d.earlyRefreshes, s.EarlyRefreshes)
	counter(d.staleServed, s.StaleServed)
	counter(d.redisErrors, s.RedisErrors)
	counter(d.fencedLoads, s.FencedLoads)
	counter(d.hotKeys, s.HotKeys)
	counter(d.replicaHits, s.ReplicaHits)
	counter(d.replicaMisses, s.ReplicaMisses)
	counter(d.codecErrors, s.CodecErrors)
}
