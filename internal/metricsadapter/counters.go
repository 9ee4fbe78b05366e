package metricsadapter

import "github.com/stampede-cache/stampede"

// A Counter is one of the counters of stampede.Stats that the adapters export, in the order
// they create them.
type Counter int

const (
	Hits Counter = iota // by layer: l1 or l2
	Misses
	Loads
	LoadErrors
	LeaseWaits
	EarlyRefreshes
	StaleServed
	RedisErrors
	FencedLoads
	HotKeys
	ReplicaHits
	ReplicaMisses
	CodecErrors
	NumCounters // the number of Counters, not one of them
)

var counterMetrics = [NumCounters]Metric{
	Hits: {"stampede_hits_total", "stampede.hits", "{request}",
		"Gets answered from a cache layer, fresh or stale: l1 (in-process) or l2 (Redis). " +
			"Every Get that does not fail first is an l1 hit, an l2 hit or a miss."},
	Misses: {"stampede_misses_total", "stampede.misses", "{request}",
		"Gets that found no servable value and waited for a load: their own, another caller's " +
			"in this instance, or another instance's."},
	Loads: {"stampede_loads_total", "stampede.loads", "{load}",
		"Calls of a loader (queries of the source of truth) by this instance."},
	LoadErrors: {"stampede_load_errors_total", "stampede.load.errors", "{load}",
		"Loads that failed; a not-found is not a failure."},
	LeaseWaits: {"stampede_lease_waits_total", "stampede.lease.waits", "{wait}",
		"Times this instance waited for a load that another instance held the lease of."},
	EarlyRefreshes: {"stampede_early_refreshes_total", "stampede.early_refreshes", "{refresh}",
		"Background refreshes started: early refresh and stale-while-revalidate."},
	StaleServed: {"stampede_stale_served_total", "stampede.stale_served", "{request}",
		"Gets answered with a stale value (stale-while-revalidate or stale-if-error)."},
	RedisErrors: {"stampede_redis_errors_total", "stampede.redis.errors", "{error}",
		"Redis calls of the cache that failed, on the paths of reads and writes."},
	FencedLoads: {"stampede_fenced_loads_total", "stampede.fenced_loads", "{load}",
		"Loads whose value was not written because a write to the key came after the load began."},
	HotKeys: {"stampede_hot_keys_total", "stampede.hot_keys", "{report}",
		"Hot-key reports: one per key over the threshold per detection window."},
	ReplicaHits: {"stampede_replica_hits_total", "stampede.replica.hits", "{request}",
		"Gets answered from a replica of a replicated hot key; they count among the l2 hits too."},
	ReplicaMisses: {"stampede_replica_misses_total", "stampede.replica.misses", "{read}",
		"Reads of a replica that found nothing servable, so that the primary key was read instead."},
	CodecErrors: {"stampede_codec_errors_total", "stampede.codec_errors", "{error}",
		"Values the codec failed to encode or decode, panics included."},
}

// Metric returns the metric that exports c.
func (c Counter) Metric() Metric { return counterMetrics[c] }

// Layered reports whether c has a layer label (or attribute): only Hits has.
func (c Counter) Layered() bool { return c == Hits }

// A Count is the value of a Counter in a stampede.Stats.
type Count struct {
	Counter Counter
	Layer   string // l1 or l2 for Hits; empty for the others
	Value   uint64
}

// Counts returns the value of every Counter in s, in the order of the Counters; Hits comes
// twice, l1 then l2.
func Counts(s stampede.Stats) [NumCounters + 1]Count {
	return [...]Count{
		{Hits, "l1", s.L1Hits},
		{Hits, "l2", s.L2Hits},
		{Misses, "", s.Misses},
		{Loads, "", s.Loads},
		{LoadErrors, "", s.LoadErrors},
		{LeaseWaits, "", s.LeaseWaits},
		{EarlyRefreshes, "", s.EarlyRefreshes},
		{StaleServed, "", s.StaleServed},
		{RedisErrors, "", s.RedisErrors},
		{FencedLoads, "", s.FencedLoads},
		{HotKeys, "", s.HotKeys},
		{ReplicaHits, "", s.ReplicaHits},
		{ReplicaMisses, "", s.ReplicaMisses},
		{CodecErrors, "", s.CodecErrors},
	}
}
