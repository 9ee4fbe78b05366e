package stampede

import "time"

// Stats are cumulative counters of a Cache since New. Each counter is read atomically, but a
// Stats is not a snapshot of all of them at one instant.
type Stats struct {
	// Gets counts calls of Get with a valid key and loader: L1Hits + L2Hits + Misses.
	Gets uint64
	// L1Hits counts Gets answered from the in-process L1, fresh or stale.
	L1Hits uint64
	// L2Hits counts Gets answered from a value read from Redis, fresh or stale.
	L2Hits uint64
	// Misses counts Gets that found no servable value in the L1 or Redis: they waited for a
	// load (their own, another caller's in this instance, or another instance's), or got the
	// error, or the stale value, of a load that failed moments before (see the failure back-off).
	Misses uint64
	// Loads counts calls of a loader by this instance; a call of a BatchLoader counts once per
	// key it was asked for.
	Loads uint64
	// LoadErrors counts loads that failed (a not-found is not a failure).
	LoadErrors uint64
	// LeaseWaits counts the times this instance waited for a load that another instance held
	// the lease of.
	LeaseWaits uint64
	// EarlyRefreshes counts background refreshes started: early refresh and
	// stale-while-revalidate.
	EarlyRefreshes uint64
	// StaleServed counts Gets answered with a stale value: while a refresh runs
	// (stale-while-revalidate, soft invalidation) or because a load failed (stale-if-error).
	StaleServed uint64
	// RedisErrors counts Redis calls that failed.
	RedisErrors uint64
	// FencedLoads counts loads whose value was not written because a write (Set, Invalidate,
	// Delete, Refresh or another load) came after the load began.
	FencedLoads uint64
	// HotKeys counts hot-key reports: one per hot key per detection window.
	HotKeys uint64
	// ReplicaHits counts Gets answered from a replica of a replicated key (they count in L2Hits
	// too); ReplicaMisses counts reads of a replica that found nothing servable and read the
	// primary instead.
	ReplicaHits   uint64
	ReplicaMisses uint64
	// CodecErrors counts values the codec failed to encode (the write or load fails, and counts
	// in LoadErrors for a load) or to decode (read as a miss), including codec panics.
	CodecErrors uint64

	// L1Entries and L1Bytes are gauges, not counters: the entries the L1 holds now (values, and
	// the tombstones of recent evictions), and their estimated bytes (see WithL1Bytes). Both
	// are 0 without an L1.
	L1Entries uint64
	L1Bytes   uint64
}

// The counters, in the order of their stripes.
const (
	statL1Hits = iota
	statL2Hits
	statMisses
	statLoads
	statLoadErrors
	statLeaseWaits
	statEarlyRefreshes
	statStaleServed
	statRedisErrors
	statFencedLoads
	statHotKeys
	statReplicaHits
	statReplicaMisses
	statCodecErrors
	numStats
)

// Stats returns the counters. It is safe for concurrent use and cheap enough to poll.
func (c *Cache[V]) Stats() Stats {
	n := c.stats.Load
	var entries int
	var bytes int64
	if c.l1 != nil {
		entries, bytes = c.l1.size()
	}
	return Stats{
		L1Entries:      uint64(entries),
		L1Bytes:        uint64(bytes),
		Gets:           n(statL1Hits) + n(statL2Hits) + n(statMisses),
		L1Hits:         n(statL1Hits),
		L2Hits:         n(statL2Hits),
		Misses:         n(statMisses),
		Loads:          n(statLoads),
		LoadErrors:     n(statLoadErrors),
		LeaseWaits:     n(statLeaseWaits),
		EarlyRefreshes: n(statEarlyRefreshes),
		StaleServed:    n(statStaleServed),
		RedisErrors:    n(statRedisErrors),
		FencedLoads:    n(statFencedLoads),
		HotKeys:        n(statHotKeys),
		ReplicaHits:    n(statReplicaHits),
		ReplicaMisses:  n(statReplicaMisses),
		CodecErrors:    n(statCodecErrors),
	}
}

// count counts a Get in one of L1Hits, L2Hits and Misses (each Get counts in exactly one), and
// the count, which numbers the Get, samples it for hot-key detection at no extra cost.
func (c *Cache[V]) count(stat int, key string) {
	if n := c.stats.Add(stat); c.hot != nil && c.hot.detector.Sampled(n) {
		c.hot.detector.Count(key)
	}
}

// servedStale counts a stale value served to a caller, in Stats and Hooks: the one place where
// stale serves are counted, whether stale-while-revalidate or stale-if-error served it.
func (c *Cache[V]) servedStale(key string, freshUntil, now int64) {
	c.stats.Add(statStaleServed)
	c.hooks.staleServed(key, time.Duration(now-freshUntil))
}
