package stampedeotel

import (
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stampede-cache/stampede"
)

// ObserveStats makes every collection read the cache's counters through stats, usually the
// cache's Stats method, and observe them as counters: stampede.hits by layer (l1, l2),
// stampede.misses, stampede.loads, stampede.load.errors, stampede.lease.waits,
// stampede.early_refreshes, stampede.stale_served, stampede.redis.errors,
// stampede.fenced_loads and stampede.hot_keys. Until it is called, or after it is called with nil, these counters are
// not observed. A later call replaces stats, for instance when the cache was replaced; the
// counters then start again from the new cache's, which backends take as a counter reset.
//
// stats is called once per collection, on the collecting goroutine; it must be safe for
// concurrent use.
func (m *Metrics) ObserveStats(stats func() stampede.Stats) {
	if stats == nil {
		m.stats.Store(nil)
		return
	}
	m.stats.Store(&stats)
}

// statCounters are the observable counters of stampede.Stats.
type statCounters struct {
	hits                                                  metric.Int64ObservableCounter // by layer
	misses, loads, loadErrors, leaseWaits, earlyRefreshes metric.Int64ObservableCounter
	staleServed, redisErrors, fencedLoads, hotKeys        metric.Int64ObservableCounter
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
		l1:    metric.WithAttributeSet(attribute.NewSet(cache, attribute.String("layer", "l1"))),
		l2:    metric.WithAttributeSet(attribute.NewSet(cache, attribute.String("layer", "l2"))),
		cache: metric.WithAttributeSet(attribute.NewSet(cache)),
	}
	return s, errors.Join(errs...)
}

// all returns the instruments, for the registration of the callback.
func (s *statCounters) all() []metric.Observable {
	return []metric.Observable{s.hits, s.misses, s.loads, s.loadErrors, s.leaseWaits,
		s.earlyRefreshes, s.staleServed, s.redisErrors, s.fencedLoads, s.hotKeys}
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
}
