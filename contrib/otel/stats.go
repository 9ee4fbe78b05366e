package stampedeotel

import (
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stampede-cache/stampede"
)

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
	m.src.Store(&src)
}

// statCounters are the observable counters of stampede.Stats.
type statCounters struct {
	hits                                                  metric.Int64ObservableCounter // by layer
	misses, loads, loadErrors, leaseWaits, earlyRefreshes metric.Int64ObservableCounter
	staleServed, redisErrors, fencedLoads, hotKeys        metric.Int64ObservableCounter
	codecErrors                                           metric.Int64ObservableCounter
	replicaHits, replicaMisses                            metric.Int64ObservableCounter
	l1, l2, cache                                         metric.ObserveOption // attribute sets
}

func newStatCounters(meter metric.Meter, cache attribute.KeyValue) (statCounters, error) {
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			errs = append(errs, err)
		}
		return c
	}
	s := statCounters{
		hits: counter("stampede.hits", "{request}",
			"Gets answered from a cache layer, fresh or stale: l1 (in-process) or l2 (Redis). "+
				"Every Get that does not fail first is an l1 hit, an l2 hit or a miss."),
		misses: counter("stampede.misses", "{request}",
			"Gets that found no servable value and waited for a load: their own, another caller's "+
				"in this instance, or another instance's."),
		loads: counter("stampede.loads", "{load}",
			"Calls of a loader (queries of the source of truth) by this instance."),
		loadErrors: counter("stampede.load.errors", "{load}",
			"Loads that failed; a not-found is not a failure."),
		leaseWaits: counter("stampede.lease.waits", "{wait}",
			"Times this instance waited for a load that another instance held the lease of."),
		earlyRefreshes: counter("stampede.early_refreshes", "{refresh}",
			"Background refreshes started: early refresh and stale-while-revalidate."),
		staleServed: counter("stampede.stale_served", "{request}",
			"Gets answered with a stale value (stale-while-revalidate or stale-if-error)."),
		redisErrors: counter("stampede.redis.errors", "{error}",
			"Redis calls of the cache that failed, on the paths of reads and writes."),
		fencedLoads: counter("stampede.fenced_loads", "{load}",
			"Loads whose value was not written because a write to the key came after the load began."),
		hotKeys: counter("stampede.hot_keys", "{report}",
			"Hot-key reports: one per key over the threshold per detection window."),
		replicaHits: counter("stampede.replica.hits", "{request}",
			"Gets answered from a replica of a replicated hot key; they count among the l2 hits too."),
		replicaMisses: counter("stampede.replica.misses", "{read}",
			"Reads of a replica that found nothing servable, so that the primary key was read instead."),
		codecErrors: counter("stampede.codec_errors", "{error}",
			"Values the codec failed to encode or decode, panics included."),
		l1:    metric.WithAttributeSet(attribute.NewSet(cache, attribute.String("layer", "l1"))),
		l2:    metric.WithAttributeSet(attribute.NewSet(cache, attribute.String("layer", "l2"))),
		cache: metric.WithAttributeSet(attribute.NewSet(cache)),
	}
	return s, errors.Join(errs...)
}

// all returns the instruments, for the registration of the callback.
func (s *statCounters) all() []metric.Observable {
	return []metric.Observable{s.hits, s.misses, s.loads, s.loadErrors, s.leaseWaits,
		s.earlyRefreshes, s.staleServed, s.redisErrors, s.fencedLoads, s.hotKeys, s.replicaHits,
		s.replicaMisses, s.codecErrors}
}

func (s *statCounters) observe(o metric.Observer, st stampede.Stats) {
	n := func(v uint64) int64 { return int64(min(v, 1<<63-1)) }
	o.ObserveInt64(s.hits, n(st.L1Hits), s.l1)
	o.ObserveInt64(s.hits, n(st.L2Hits), s.l2)
	o.ObserveInt64(s.misses, n(st.Misses), s.cache)
	o.ObserveInt64(s.loads, n(st.Loads), s.cache)
	o.ObserveInt64(s.loadErrors, n(st.LoadErrors), s.cache)
	o.ObserveInt64(s.leaseWaits, n(st.LeaseWaits), s.cache)
	o.ObserveInt64(s.earlyRefreshes, n(st.EarlyRefreshes), s.cache)
	o.ObserveInt64(s.staleServed, n(st.StaleServed), s.cache)
	o.ObserveInt64(s.redisErrors, n(st.RedisErrors), s.cache)
	o.ObserveInt64(s.fencedLoads, n(st.FencedLoads), s.cache)
	o.ObserveInt64(s.hotKeys, n(st.HotKeys), s.cache)
	o.ObserveInt64(s.replicaHits, n(st.ReplicaHits), s.cache)
	o.ObserveInt64(s.replicaMisses, n(st.ReplicaMisses), s.cache)
	o.ObserveInt64(s.codecErrors, n(st.CodecErrors), s.cache)
}
