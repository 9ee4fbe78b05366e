package stampede

import (
	"log/slog"
	"time"
)

// An Option configures a Cache in New.
type Option interface {
	applyOption(*config)
}

// A GetOption changes the policy of one call of Get, Set or Refresh: its TTL, negative TTL,
// stale windows, or its use of the L1. (How loads are deduplicated, refreshed early or
// replicated is the key's, not the call's: those options are Options only.) When several
// callers share one load, the load follows the options of the caller that started it.
type GetOption interface {
	applyGetOption(*Policy)
}

// A PolicyOption sets a field of Policy that makes sense per call: given to New, for every key;
// given to Get, Set or Refresh, for that call.
type PolicyOption interface {
	Option
	GetOption
}

type policyOption struct {
	field string
	set   func(*Policy)
}

func (o policyOption) applyOption(c *config) {
	o.set(&c.policy)
	c.policyFields = append(c.policyFields, o.field)
}

func (o policyOption) applyGetOption(p *Policy) { o.set(p) }

type option func(*config)

// keyOption sets a field of the cache-wide Policy that is a key's, never a call's: it is not a
// GetOption, so that no call can give a shared load a strategy of its own.
func keyOption(field string, set func(*Policy)) Option {
	return option(func(c *config) {
		set(&c.policy)
		c.policyFields = append(c.policyFields, field)
	})
}

func (f option) applyOption(c *config) { f(c) }

// WithTTL sets how long loaded values are fresh (Policy.TTL). Default: 1 minute.
func WithTTL(d time.Duration) PolicyOption {
	return policyOption{"TTL", func(p *Policy) { p.TTL = d }}
}

// WithStrategy sets how loads are deduplicated (Policy.Strategy). Default: Lease. It is an
// Option of the cache, not of a call: callers that share a load must share its strategy.
func WithStrategy(s Strategy) Option {
	return keyOption("Strategy", func(p *Policy) { p.Strategy = s })
}

// WithNegativeTTL sets how long a not-found is cached (Policy.NegativeTTL); 0 or less turns
// negative caching off. Default: 10 seconds.
func WithNegativeTTL(d time.Duration) PolicyOption {
	return policyOption{"NegativeTTL", func(p *Policy) { p.NegativeTTL = max(d, 0) }}
}

// WithStaleWhileRevalidate sets how long after expiry a value is served while one background
// refresh runs (Policy.StaleWhileRevalidate). Default: 0, off.
func WithStaleWhileRevalidate(d time.Duration) PolicyOption {
	return policyOption{"StaleWhileRevalidate", func(p *Policy) { p.StaleWhileRevalidate = max(d, 0) }}
}

// WithStaleIfError sets how long after expiry a value is served when its load fails
// (Policy.StaleIfError). Default: 0, off.
func WithStaleIfError(d time.Duration) PolicyOption {
	return policyOption{"StaleIfError", func(p *Policy) { p.StaleIfError = max(d, 0) }}
}

// WithEarlyRefresh sets the beta of probabilistic early refresh (Policy.EarlyRefresh); 0 or
// less turns it off. Default: 1. It is an Option of the cache, not of a call.
func WithEarlyRefresh(beta float64) Option {
	return keyOption("EarlyRefresh", func(p *Policy) { p.EarlyRefresh = max(beta, 0) })
}

// WithoutL1 keeps values out of the in-process L1 (Policy.SkipL1): given to New, for every
// key, and no L1 is created; given to Get, Set or Refresh, for that call. One exception, by
// request: with HotKeys.Promote, promoted hot keys are kept in an L1 even so (sized by WithL1),
// and New then creates one for them.
func WithoutL1() PolicyOption {
	return policyOption{"SkipL1", func(p *Policy) { p.SkipL1 = true }}
}

// WithPolicy decides the Policy of each key with f, which is called on every Get and Set and
// must be fast and safe for concurrent use. f's Policy replaces the cache-wide policy options,
// so New refuses WithPolicy together with any of them but WithTTL, which fills a zero TTL.
func WithPolicy(f func(key string) Policy) Option {
	return option(func(c *config) { c.policyFunc = f; c.policyFuncSet = true })
}

// WithNamespace sets the prefix of every Redis key and of the pub/sub channel, so several
// caches can share one Redis. Caches that share a namespace share values, leases and
// invalidations; they must store the same type. It may not be empty or contain braces.
// Default: "stampede".
func WithNamespace(ns string) Option {
	return option(func(c *config) { c.namespace = ns })
}

// WithL1 sets the in-process L1: at most size entries, each kept at most ttl, which bounds how
// long an instance may serve a value that another instance replaced while its invalidation
// message was lost. Default: 10,000 entries for 10 seconds.
func WithL1(size int, ttl time.Duration) Option {
	return option(func(c *config) { c.l1Size, c.l1TTL = size, ttl })
}

// WithL1Bytes bounds the L1 by the estimated bytes of its entries instead of their number
// (WithL1's size; its TTL still applies): each entry weighs its key, the length of its encoded
// value, and about 200 bytes of bookkeeping. Use it when values vary in size, so that a few large
// ones cannot take the memory of many small ones. Stats reports the L1's entries and bytes
// either way. 0, the default, bounds it by number.
func WithL1Bytes(maxBytes int64) Option {
	return option(func(c *config) { c.l1Bytes = maxBytes })
}

// WithFailFast makes New return an error when Redis does not confirm the subscription to the
// namespace's channel within the Redis timeout: a wrong address or a missing ACL permission
// fails at start-up rather than costing the first Gets a Redis timeout each. Without it, New
// succeeds and the cache answers through the loader until Redis does.
func WithFailFast() Option {
	return option(func(c *config) { c.failFast = true })
}

// WithEvictionWindow sets how long the evictions that writes send to the other instances' L1s
// are gathered before they go out together. Every Set, Delete, Invalidate and Refresh (and
// every fill that replaced a value) must evict the key from every instance's L1. Sent one
// message per write, that costs Redis a message per write per instance; gathered, it costs one
// message per window (per cluster master), carrying a few bytes per key, on sharded pub/sub
// where Redis has it (SPUBLISH, Redis 7), so that on a cluster it stays on one shard.
//
// The window is the price: another instance's L1 may serve the replaced value for up to the
// window plus a message's latency after the write returned (see docs/operations.md for the
// measured bound), instead of only the latency. Reads on the writing instance, and on
// instances without an L1, see the write at once either way, and notifications to callers
// waiting for a load are never delayed.
//
// 0 publishes every eviction at once, one message per write on the namespace's channel, as
// versions before it did: instances of those versions understand only such messages, so a
// rolling upgrade from them deploys with 0 first (see docs/operations.md). It must be between 0
// and 1 s. Default: 10 ms.
func WithEvictionWindow(d time.Duration) Option {
	return option(func(c *config) { c.evictionWindow = d })
}

// WithJitter sets the fraction of each TTL, in [0, 1), that a write takes off at random, so that
// keys written together expire apart. Default: 0.1.
func WithJitter(fraction float64) Option {
	return option(func(c *config) { c.jitter = fraction })
}

// WithLeaseTTL sets how long a lease lasts when its holder stops extending it (the holder
// extends it every third of the TTL while its load runs). It bounds how long waiters wait for a
// holder that died. Default: 3 seconds.
func WithLeaseTTL(d time.Duration) Option {
	return option(func(c *config) { c.leaseTTL = d })
}

// WithLoadTimeout sets the deadline of every load. Loads run detached from the cancellation
// of the caller that started them (others may be waiting for them) and end at this deadline or
// at Close. A loader that ignores its ctx is abandoned at the deadline: its callers get
// ErrLoadTimeout, the key's lease is released so that another caller can load, and what the
// loader returns later is dropped. Default: 10 seconds.
func WithLoadTimeout(d time.Duration) Option {
	return option(func(c *config) { c.loadTimeout = d })
}

// WithRedisTimeout sets the deadline of each Redis call, so that no call of the cache waits
// longer for Redis, even for a Redis that accepts connections and never answers. go-redis
// applies a context's deadline to reads and writes of the connection only when the client's
// ContextTimeoutEnabled option is set: set it. For a client without it, New logs a warning and
// the cache stops waiting for each call at this deadline itself, at the cost of a goroutine
// per Redis call (the call goes on in the background until go-redis's own timeouts end it).
// Default: 250 milliseconds.
func WithRedisTimeout(d time.Duration) Option {
	return option(func(c *config) { c.redisTimeout = d })
}

// WithCodec sets how values are encoded in Redis. Default: JSONCodec.
func WithCodec(codec Codec) Option {
	return option(func(c *config) { c.codec = codec })
}

// WithMaxValueBytes sets the largest encoded value the cache writes to Redis; a larger one is
// an ErrValueTooLarge and nothing is written. Default: 1 MiB.
func WithMaxValueBytes(n int) Option {
	return option(func(c *config) { c.maxValueBytes = n })
}

// WithHooks sets callbacks for metrics and tracing.
func WithHooks(h Hooks) Option {
	return option(func(c *config) { c.hooks = h })
}

// WithLogger sets where the cache logs what an operator should know (a subscription lost, a
// fallback taken). Nothing is logged on the hit path. Default: nothing is logged, except what
// is a bug to fix (a client that ignores context deadlines, a hook that panics), which goes to
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return option(func(c *config) { c.logger, c.loggerSet = l, true })
}

// WithFailureBackoff sets the back-off after a failed load. When a load of a key fails (the
// loader's error, a panic, a timeout; not ErrNotFound, and not a load cancelled by its caller
// or Close), every instance stops loading that key for a while: callers get a stale value if
// their policy allows it (stale-if-error), or else the error of the failed load, without
// calling their loader. The first failure backs off for a time drawn in [base/2, base); each
// further failure in a row doubles it, up to max. A successful load anywhere ends it. This is
// what keeps a failing source from being retried by every caller at once.
//
// WithFailureBackoff(0, 0) turns it off: after a failure the next caller loads again (still
// one load per key at a time). Default: base 100 milliseconds, max 5 seconds.
func WithFailureBackoff(base, max time.Duration) Option {
	return option(func(c *config) { c.backoffBase, c.backoffMax = base, max })
}

// WithRefreshWorkers bounds how many background refreshes (early refresh and
// stale-while-revalidate) run at once; a refresh due while all are busy is skipped and triggered
// again by a later read. Default: 64.
func WithRefreshWorkers(n int) Option {
	return option(func(c *config) { c.refreshWorkers = n })
}

// WithWriteReplicas sets how many replicas of the primary must acknowledge a write (Set,
// Delete, Invalidate, Refresh) before it returns, as Redis's WAIT does, within half the Redis
// timeout. Replication is asynchronous: a write that only the primary has is lost if a replica
// that lacks it is promoted (a Sentinel or Cluster failover). A write that is not acknowledged
// in time is tried again within the Redis timeout, and then returned as an error. The cache
// asks for no more replicas than the primary has connected (it looks every second): on a
// single node, writes never wait.
//
// n = 0 turns the wait off, for faster writes that a failover may lose. Loads' fills do not
// wait either way: a lost fill costs one more load. Default: 1.
func WithWriteReplicas(n int) Option {
	return option(func(c *config) { c.writeReplicas = n })
}

// WithReplicas sets how many replicas serve the reads of keys (Policy.Replicas). Default: 0.
// It is an Option of the cache, not of a call: every reader of a key must agree where it is.
func WithReplicas(n int) Option {
	return keyOption("Replicas", func(p *Policy) { p.Replicas = n })
}

// WithReplicaTTL sets how long a replica lives after it was written, less up to the jitter
// fraction, and so how long it may serve a value after a write replaced it. Default: 2 seconds.
func WithReplicaTTL(d time.Duration) Option {
	return option(func(c *config) { c.replicaTTL = d })
}

// WithHotKeys configures hot-key detection.
func WithHotKeys(h HotKeys) Option {
	return option(func(c *config) { c.hotKeys, c.hotKeysOff = h, false })
}

// WithoutHotKeys turns hot-key detection off.
func WithoutHotKeys() Option {
	return option(func(c *config) { c.hotKeysOff = true })
}
