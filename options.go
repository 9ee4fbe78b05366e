package stampede

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"
)

// Strategy chooses how a Cache keeps the loads of one key from piling onto the source.
type Strategy int

const (
	// Lease runs at most one load of a key at a time across every Cache that shares the Redis
	// and namespace: the caller that takes the key's lease in Redis loads, the others wait for
	// its notification. It is the default.
	Lease Strategy = iota
	// Singleflight runs at most one load of a key at a time in each Cache (each instance of the
	// service), without a lease: N instances may load a key N times at once, and nobody waits
	// on another instance.
	Singleflight
)

func (s Strategy) String() string {
	switch s {
	case Lease:
		return "Lease"
	case Singleflight:
		return "Singleflight"
	}
	return fmt.Sprintf("Strategy(%d)", int(s))
}

// Policy is how a Cache treats a key: how long its values stay fresh, whether stale values may
// be served, and how loads are deduplicated. A Policy is used as written: a zero field turns its
// feature off, except TTL, which then takes the cache's TTL (WithTTL).
//
// Keys get the cache-wide policy: DefaultPolicy, changed by the policy options (WithTTL,
// WithStrategy, ...). WithPolicy decides each key's Policy with a function instead, and per-call
// GetOptions change it for one call.
type Policy struct {
	// Strategy deduplicates loads fleet-wide (Lease, the zero value) or per instance
	// (Singleflight).
	Strategy Strategy

	// TTL is how long a loaded value is fresh. Each write takes up to Jitter of it off (see
	// WithJitter), so keys written together do not expire together. Zero means the cache's TTL.
	TTL time.Duration

	// NegativeTTL is how long a loader's ErrNotFound is cached; zero caches nothing and every
	// Get of a missing key calls the loader (still once per key at a time).
	NegativeTTL time.Duration

	// StaleWhileRevalidate is how long after its TTL a value is still served, at once, while
	// one background refresh replaces it. Zero: an expired value is a miss.
	StaleWhileRevalidate time.Duration

	// StaleIfError is how long after its TTL a value is served instead of the error when its
	// load fails. Zero: the error is returned.
	StaleIfError time.Duration

	// EarlyRefresh is the beta of probabilistic early refresh (XFetch): a value is refreshed in
	// the background, before it expires, when now - loadTime*beta*ln(U) >= its expiry, U uniform
	// in (0,1]. 1 is the usual choice, larger refreshes earlier; zero turns it off.
	EarlyRefresh float64

	// SkipL1 keeps the key out of the in-process L1: every Get reads Redis.
	SkipL1 bool

	// Replicas is how many replica keys, on other Redis Cluster nodes, serve the key's reads
	// (see WithReplicas); zero: none, the key's node serves them all. A replica may serve a
	// value for up to WithReplicaTTL after a write replaced it: keep it zero for data that must
	// be exact.
	Replicas int
}

// DefaultPolicy returns the policy of a Cache created without policy options.
func DefaultPolicy() Policy {
	return Policy{
		Strategy:     Lease,
		TTL:          time.Minute,
		NegativeTTL:  10 * time.Second,
		EarlyRefresh: 1,
	}
}

// hardTTL is how long Redis keeps a value written at ttl: as long as any policy may serve it.
func (p *Policy) hardTTL(ttl time.Duration) time.Duration {
	return ttl + max(p.StaleWhileRevalidate, p.StaleIfError)
}

func (p *Policy) validate() error {
	switch {
	case p.Strategy != Lease && p.Strategy != Singleflight:
		return fmt.Errorf("stampede: unknown strategy %d", int(p.Strategy))
	case p.TTL <= 0:
		return fmt.Errorf("stampede: TTL %v is not positive", p.TTL)
	case p.NegativeTTL < 0:
		return fmt.Errorf("stampede: negative NegativeTTL %v", p.NegativeTTL)
	case p.StaleWhileRevalidate < 0:
		return fmt.Errorf("stampede: negative StaleWhileRevalidate %v", p.StaleWhileRevalidate)
	case p.StaleIfError < 0:
		return fmt.Errorf("stampede: negative StaleIfError %v", p.StaleIfError)
	case !(p.EarlyRefresh >= 0) || math.IsInf(p.EarlyRefresh, 0):
		return fmt.Errorf("stampede: EarlyRefresh %v is not a finite beta >= 0", p.EarlyRefresh)
	case p.Replicas < 0 || p.Replicas > maxReplicas:
		return fmt.Errorf("stampede: Replicas %d is not in [0, %d]", p.Replicas, maxReplicas)
	}
	return nil
}

// An Option configures a Cache in New.
type Option interface {
	applyOption(*config)
}

// A GetOption changes the policy of one call of Get or Set. When several callers share one
// load, the load follows the options of the caller that started it.
type GetOption interface {
	applyGetOption(*Policy)
}

// A PolicyOption sets a field of Policy: given to New, for every key; given to Get or Set, for
// that call.
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

func (f option) applyOption(c *config) { f(c) }

// WithTTL sets how long loaded values are fresh (Policy.TTL). Default: 1 minute.
func WithTTL(d time.Duration) PolicyOption {
	return policyOption{"TTL", func(p *Policy) { p.TTL = d }}
}

// WithStrategy sets how loads are deduplicated (Policy.Strategy). Default: Lease.
func WithStrategy(s Strategy) PolicyOption {
	return policyOption{"Strategy", func(p *Policy) { p.Strategy = s }}
}

// WithNegativeTTL sets how long a not-found is cached (Policy.NegativeTTL); 0 turns negative
// caching off. Default: 10 seconds.
func WithNegativeTTL(d time.Duration) PolicyOption {
	return policyOption{"NegativeTTL", func(p *Policy) { p.NegativeTTL = d }}
}

// WithStaleWhileRevalidate sets how long after expiry a value is served while one background
// refresh runs (Policy.StaleWhileRevalidate). Default: 0, off.
func WithStaleWhileRevalidate(d time.Duration) PolicyOption {
	return policyOption{"StaleWhileRevalidate", func(p *Policy) { p.StaleWhileRevalidate = d }}
}

// WithStaleIfError sets how long after expiry a value is served when its load fails
// (Policy.StaleIfError). Default: 0, off.
func WithStaleIfError(d time.Duration) PolicyOption {
	return policyOption{"StaleIfError", func(p *Policy) { p.StaleIfError = d }}
}

// WithEarlyRefresh sets the beta of probabilistic early refresh (Policy.EarlyRefresh); 0 turns
// it off. Default: 1.
func WithEarlyRefresh(beta float64) PolicyOption {
	return policyOption{"EarlyRefresh", func(p *Policy) { p.EarlyRefresh = beta }}
}

// WithoutL1 keeps values out of the in-process L1 (Policy.SkipL1): given to New, for every
// key, and no L1 is created; given to Get or Set, for that call.
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

// config is what the options set; New validates it.
type config struct {
	namespace      string
	policy         Policy
	policyFields   []string // the policy options given, for the check against WithPolicy
	policyFunc     func(key string) Policy
	policyFuncSet  bool
	l1Size         int
	l1TTL          time.Duration
	jitter         float64
	leaseTTL       time.Duration
	loadTimeout    time.Duration
	redisTimeout   time.Duration
	codec          Codec
	maxValueBytes  int
	hooks          Hooks
	logger         *slog.Logger
	loggerSet      bool
	refreshWorkers int
	backoffBase    time.Duration
	backoffMax     time.Duration
	writeReplicas  int
	hotKeys        HotKeys
	hotKeysOff     bool
	replicaTTL     time.Duration
}

func defaultConfig() config {
	return config{
		namespace:      "stampede",
		policy:         DefaultPolicy(),
		l1Size:         10_000,
		l1TTL:          10 * time.Second,
		jitter:         0.1,
		leaseTTL:       3 * time.Second,
		loadTimeout:    10 * time.Second,
		redisTimeout:   250 * time.Millisecond,
		codec:          JSONCodec{},
		maxValueBytes:  1 << 20,
		logger:         slog.New(slog.DiscardHandler),
		refreshWorkers: 64,
		replicaTTL:     2 * time.Second,
		backoffBase:    100 * time.Millisecond,
		backoffMax:     5 * time.Second,
		writeReplicas:  1,
	}
}

// maxNamespaceLen keeps namespace + key within Redis's comfortable key sizes.
const maxNamespaceLen = 256

func (c *config) validate() error {
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf("stampede: "+format, args...))
		}
	}
	check(c.namespace == "" || len(c.namespace) > maxNamespaceLen,
		"namespace must have 1 to %d bytes", maxNamespaceLen)
	check(strings.ContainsAny(c.namespace, "{}"),
		"namespace %q contains a brace, which would change Redis Cluster's hash slot of its keys", c.namespace)
	check(c.l1Size <= 0 || c.l1TTL <= 0, "WithL1(%d, %v): size and TTL must be positive", c.l1Size, c.l1TTL)
	check(!(c.jitter >= 0 && c.jitter < 1), "WithJitter(%v): fraction must be in [0, 1)", c.jitter)
	check(c.leaseTTL < 10*time.Millisecond, "WithLeaseTTL(%v): must be at least 10ms", c.leaseTTL)
	check(c.loadTimeout <= 0, "WithLoadTimeout(%v): must be positive", c.loadTimeout)
	check(c.redisTimeout <= 0, "WithRedisTimeout(%v): must be positive", c.redisTimeout)
	check(c.codec == nil, "WithCodec: nil codec")
	check(c.maxValueBytes <= 0, "WithMaxValueBytes(%d): must be positive", c.maxValueBytes)
	check(c.logger == nil, "WithLogger: nil logger")
	check(c.writeReplicas < 0, "WithWriteReplicas(%d): must not be negative", c.writeReplicas)
	check(c.refreshWorkers <= 0, "WithRefreshWorkers(%d): must be positive", c.refreshWorkers)
	check(c.backoffBase < 0 || c.backoffMax < c.backoffBase || c.backoffBase == 0 && c.backoffMax != 0,
		"WithFailureBackoff(%v, %v): need 0 <= base <= max, or both 0 (off)", c.backoffBase, c.backoffMax)
	h := c.hotKeys
	check(!(h.Threshold >= 0) || math.IsInf(h.Threshold, 0) || h.Window < 0 || h.TopK < 0 || h.SampleRate < 0 || h.PromotedL1TTL < 0 ||
		h.Replicas < 0 || h.Replicas > maxReplicas,
		"WithHotKeys(%+v): fields must be finite, not negative, and Replicas at most %d", h, maxReplicas)
	check(c.replicaTTL <= 0, "WithReplicaTTL(%v): must be positive", c.replicaTTL)
	if c.policyFuncSet {
		check(c.policyFunc == nil, "WithPolicy: nil function")
		for _, f := range c.policyFields {
			check(f != "TTL", "WithPolicy decides %s for every key; drop the cache-wide option", f)
		}
	}
	if err := c.policy.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// loud returns the logger of what the user must hear about even without WithLogger.
func (c *config) loud() *slog.Logger {
	if c.loggerSet {
		return c.logger
	}
	return slog.Default()
}

// usesL1 reports whether any key may use the L1.
func (c *config) usesL1() bool {
	return c.policyFunc != nil || !c.policy.SkipL1 || !c.hotKeysOff && c.hotKeys.Promote
}

// floorTTL is how long the L1 keeps the generation floor of a key after a message evicted it:
// longer than a read that began before the message can take to reach the L1 (a Redis call is
// bounded by the Redis timeout, and a coalesced read may wait for one before its own).
func (c *config) floorTTL() time.Duration {
	return max(time.Second, 4*c.redisTimeout)
}

// genTTL is how long a fence outlives its last write: longer than any load that read it can
// run, so that such a load always finds it changed.
func (c *config) genTTL() time.Duration {
	return 2 * (c.loadTimeout + c.leaseTTL)
}
