// Package stampede puts a cache in front of a slow data source without ever letting a hot key
// stampede that source.
//
// A service calls [Cache.Get] with a key and a [Loader] that reads the source. Get answers from
// an in-process L1 (otter), else from Redis (the L2), else it runs the loader, once per key at a
// time across every instance of the service, and shares the result with every caller that asked
// meanwhile:
//
//   - Within an instance, concurrent callers of a key share one Redis read and one load.
//   - Across instances, the first to miss takes the key's lease in Redis (SET NX with a random
//     token) and loads; the others wait for its pub/sub notification, not a sleep loop, and take
//     the lease themselves if its holder dies. The [Singleflight] strategy skips the lease and
//     loads once per instance.
//   - A value due to expire is refreshed in the background before it does (probabilistic early
//     refresh, XFetch), by one caller fleet-wide, so a hot key never misses. Expiries are
//     jittered so keys written together do not expire together.
//   - A stale value may be served while one caller refreshes it (stale-while-revalidate) and
//     when the source fails (stale-if-error). A not-found is cached too (negative caching).
//
// Writes cannot cause the stampede the package exists to prevent: [Cache.Invalidate] marks a
// value stale and keeps serving it while one refresh runs; [Cache.Delete] removes it; [Cache.Set]
// writes through; [Cache.Refresh] reloads it without leaving the key empty. Each of them fences
// out loads in flight, so that a load that read the source before the write cannot store its
// older value after it, and evicts the key from the L1 of every instance.
//
// [Cache.GetMany] does what Get does for many keys at once, in the fewest round trips: one
// MGET (per slot on a cluster), one lease script per slot for the misses, and one call of a
// [BatchLoader] per chunk of [WithMaxBatch] keys for those this instance loads.
// [Cache.SetMany], [Cache.DeleteMany] and [Cache.InvalidateMany] write many keys so.
//
// Each key's [Policy] chooses its strategy, lifetimes and stale windows, cache-wide through
// options ([WithTTL], [WithStrategy], ...), per key through [WithPolicy], or per call through
// [GetOption] values. [Cache.Stats] and [Hooks] report what the cache does, and a [Tracer]
// ([WithTracer]) puts its misses, loads and waits in the caller's trace.
//
// When Redis fails, Get still answers: through the loader, still once per key per instance, and
// from values the L1 holds; the failure is reported to Stats and Hooks, not to callers. After
// five failures in a row a circuit breaker skips Redis on the read path for 250 ms at a time.
//
// Hot keys are found by sampling every Get into a small sketch ([WithHotKeys]), reported through
// Hooks.OnHotKey and [Cache.HotKeys], and optionally promoted (kept in the L1, refreshed earlier)
// or replicated ([WithReplicas], HotKeys.Replicas) over the nodes of a Redis Cluster, so that one
// node does not serve a fleet's reads of one key alone.
//
// # Redis
//
// New accepts any go-redis v9 [github.com/redis/go-redis/v9.UniversalClient]: a single node,
// Sentinel, or Cluster (a Ring is refused). The keys of a user key K in namespace N are N:{K} (the
// value), N:{K}:lock (the lease), N:{K}:gen (the fence) and N:{K}:wait (a waiter's mark, for
// leases of the previous version); they share one hash slot, so the Lua scripts run on a
// cluster. Values are stored in an envelope: a 24-byte header (generation, written-at, fresh-for,
// load time, flags) before the [Codec]'s bytes.
//
// Set the client's ContextTimeoutEnabled option so that the cache's Redis timeout
// ([WithRedisTimeout]) bounds reads and writes of its connections; without it, New warns and
// bounds each call with a goroutine of its own.
//
// Every wait has a bound: a Redis call, the Redis timeout; a load, the load timeout
// ([WithLoadTimeout]), after which a loader that ignores its ctx is abandoned; a wait for
// another instance's load, the load timeout plus two lease TTLs ([ErrWaitTimeout]), with a look
// at Redis every 100 ms at least; Close, the Redis timeout plus one second for loaders. User
// code (loaders, codecs, hooks) that panics never crashes the process: see [PanicError] and
// [Hooks].
package stampede
