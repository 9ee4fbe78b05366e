package stampede

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede/internal/breaker"
	"github.com/stampede-cache/stampede/internal/coarse"
	"github.com/stampede-cache/stampede/internal/flight"
	"github.com/stampede-cache/stampede/internal/scripts"
	"github.com/stampede-cache/stampede/internal/stripe"
)

// A Loader reads the value of key from the source of truth. It returns ErrNotFound (possibly
// wrapped) when the key does not exist. Its ctx keeps the values of the caller that started the
// load but not its cancellation (Refresh's load follows its caller's ctx), and ends at the
// cache's load timeout or at Close. A loader that does not return by then is abandoned, and a
// loader that panics fails its load with a *PanicError; neither crashes the process or holds
// the key.
//
// When a load fails (an error other than ErrNotFound, a panic, the load timeout), every
// instance backs off the key for a moment: 50 to 100 ms after the first failure, doubling while
// the loads keep failing, up to 5 s (WithFailureBackoff). Meanwhile Get returns the error of
// the failed load, or a stale value if the policy allows it (StaleIfError), without calling
// its loader: a failing source is not retried by every caller at once.
type Loader[V any] func(ctx context.Context, key string) (V, error)

var _ redisClient = redis.UniversalClient(nil)

// A Cache puts an in-process L1 and a Redis L2 in front of a slow source, and never lets one
// key's miss, expiry or invalidation send more than one load at a time to the source: one per
// key per instance under the Singleflight strategy, one per key across every instance under
// Lease.
//
// All methods are safe for concurrent use. Values are shared between callers and must not be
// modified. Create a Cache with New; Close it to stop its goroutines.
type Cache[V any] struct {
	client        redisClient
	origin        redis.UniversalClient // the client New was given
	namespace     string
	channel       string
	policy        Policy
	policyFunc    func(key string) Policy
	jitter        float64
	leaseTTL      time.Duration
	loadTimeout   time.Duration
	redisTimeout  time.Duration
	genTTL        time.Duration
	replicaTTL    time.Duration
	codec         Codec
	maxValueBytes int
	version       string // the schema version values are tagged with (WithVersion)
	writeAcks     int
	batch         batchConfig      // GetMany's chunks and refresh window (batchopts.go)
	refreshBuf    refreshBuffer[V] // early refreshes of GetMany's keys, merged (batchrefresh.go)
	loadBuf       loadBuffer[V]    // the loads of concurrent GetMany calls, merged (batchcombine.go)
	hooks         *hooks
	tracer        *tracer // nil without WithTracer
	log           *slog.Logger
	loud          *slog.Logger // what the user must hear about even without WithLogger
	redisLost     atomic.Bool  // Redis failed and has not answered since (see redisFailed)

	l1        *l1[V]   // nil when no key may use it
	hot       *hotKeys // nil when detection is off
	failures  *failures
	reads     *flight.Group[readResult] // one GET of a key at a time in this instance
	flights   *flight.Group[result[V]]  // one load (or lease wait) of a key at a time
	notify    notifier
	shards    []*notifier // the eviction stripes' subscriptions (coalesce.go); none without an L1
	evictions *evictions  // nil with WithEvictionWindow(0)
	refreshes refreshes
	orphans   orphans
	breaker   *breaker.Breaker // skips Redis on the read path while it keeps failing
	topo      topology
	clock     *coarse.Clock // read on every L1 hit: a load, not a system call
	life      *lifecycle
	stats     *stripe.Counters

	started  atomic.Bool   // New is done: a subscription confirmed from now on is a new one
	instance string        // random; lease tokens are instance + sequence
	tokens   atomic.Uint64 // sequence of lease tokens
	rand     func() float64
}

// New returns a Cache over client: a *redis.Client (a single node, or Sentinel through
// redis.NewFailoverClient) or a *redis.ClusterClient. A *redis.Ring is refused, as its nodes
// do not share pub/sub. Build the client with ContextTimeoutEnabled, so that it applies the
// cache's Redis timeout to its connections; without it, New logs a warning and the cache bounds
// each call itself (see WithRedisTimeout).
//
// New subscribes to the namespace's channel before it returns, waiting at most the Redis
// timeout; if Redis does not confirm the subscription, New logs it and succeeds (waiters then
// poll, and a goroutine keeps trying to subscribe), or with WithFailFast returns the error.
// The first failure of Redis after it answered is logged at Warn, to slog.Default without
// WithLogger; the cache keeps answering through the loader meanwhile.
func New[V any](client redis.UniversalClient, opts ...Option) (*Cache[V], error) {
	if client == nil {
		return nil, errors.New("stampede: nil Redis client")
	}
	if _, ok := client.(*redis.Ring); ok {
		return nil, errRing
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("stampede: nil Option")
		}
		o.applyOption(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, ok := cfg.codec.(JSONCodec); ok {
		if why := jsonLoses(reflect.TypeFor[V]()); why != "" {
			cfg.loud().Warn("stampede: " + why + "; export its fields, or give it a MarshalJSON, or use another Codec")
		}
	}
	var id [6]byte
	_, _ = rand.Read(id[:])
	var rc redisClient = client
	honors, known := honorsDeadlines(client)
	if known && !honors {
		cfg.loud().Warn("stampede: the Redis client was built without ContextTimeoutEnabled, so it "+
			"ignores context deadlines and waits for its own Read/WriteTimeout (3 s by default); "+
			"the cache bounds each call to the Redis timeout with a goroutine per call instead. "+
			"Set ContextTimeoutEnabled: true in the client's options.",
			"redis_timeout", cfg.redisTimeout)
		rc = deadlineClient{client}
	}
	c := &Cache[V]{
		client:        rc,
		origin:        client,
		writeAcks:     cfg.writeReplicas,
		batch:         cfg.batch,
		namespace:     cfg.namespace,
		channel:       scripts.Channel(cfg.namespace),
		policy:        cfg.policy,
		policyFunc:    cfg.policyFunc,
		jitter:        cfg.jitter,
		leaseTTL:      cfg.leaseTTL,
		loadTimeout:   cfg.loadTimeout,
		redisTimeout:  cfg.redisTimeout,
		genTTL:        cfg.genTTL(),
		replicaTTL:    cfg.replicaTTL,
		codec:         cfg.codec,
		maxValueBytes: cfg.maxValueBytes,
		version:       cfg.version,
		hooks:         &hooks{Hooks: cfg.hooks, log: cfg.loud()},
		tracer:        newTracer(cfg.tracer, cfg.loud()),
		log:           cfg.logger,
		loud:          cfg.loud(),
		refreshes:     newRefreshes(cfg.refreshWorkers),
		breaker:       breaker.New(breakerThreshold, breakerCooldown),
		life:          newLifecycle(),
		stats:         stripe.New(numStats),
		instance:      hex.EncodeToString(id[:]) + ":",
		rand:          mrand.Float64,
	}
	c.reads = flight.New(c.life.goTracked, readResult{err: ErrClosed})
	c.flights = flight.New(c.life.goTracked, result[V]{err: ErrClosed})
	if !cfg.hotKeysOff {
		c.hot = newHotKeys(cfg.hotKeys.withDefaults(cfg.l1TTL))
	}
	c.clock = coarse.New(time.Millisecond)
	f, err := newFailures(c.clock, cfg.backoffBase, cfg.backoffMax)
	if err != nil {
		c.clock.Stop()
		return nil, fmt.Errorf("stampede: %w", err)
	}
	c.failures = f
	if cfg.usesL1() {
		l1, err := newL1[V](cfg.l1Size, cfg.l1Bytes, cfg.l1TTL, cfg.floorTTL(), c.clock, cfg.logger, cfg.evictionWindow > 0)
		if err != nil {
			f.close()
			c.clock.Stop()
			return nil, fmt.Errorf("stampede: L1: %w", err)
		}
		c.l1 = l1
	}
	c.notify = notifier{
		client:           rc,
		channel:          c.channel,
		timeout:          cfg.redisTimeout,
		log:              cfg.logger,
		failed:           c.redisFailed,
		handle:           c.onMessage,
		reset:            c.onSubscribed,
		ignoresDeadlines: known && !honors,
		kick:             make(chan struct{}, 1),
	}
	c.evictions = newEvictions(cfg.evictionWindow, cfg.namespace, c.channel, client)
	if c.evictions != nil {
		if c.l1 != nil {
			for _, s := range c.evictions.stripes {
				c.shards = append(c.shards, &notifier{
					client:           rc,
					channel:          s.Channel,
					timeout:          cfg.redisTimeout,
					log:              cfg.logger,
					failed:           c.redisFailed,
					reset:            c.onSubscribed,
					ignoresDeadlines: known && !honors,
					kick:             make(chan struct{}, 1),
					sharded:          true,
					plain:            &c.evictions.plain,
					raw:              c.onEvictions,
					pubsub:           c.shardPubSub(s.Channel, known && !honors),
				})
			}
		}
	}
	first, err := c.subscribeAll()
	if err != nil && cfg.failFast {
		c.life.close(func() {})
		c.stop()
		return nil, fmt.Errorf("stampede: Redis is not reachable (WithFailFast): %w", err)
	}
	if err == nil {
		c.notify.confirmed()
		for _, n := range c.shards {
			n.confirmed()
		}
		c.readInvalidateAll(c.life.ctx)
	} else {
		c.log.Warn("stampede: cannot subscribe to the namespace's channel; until a subscription succeeds, "+
			"waiters poll Redis and the L1 keeps entries only 100 ms",
			"channel", c.channel, "err", err)
		c.redisFailed("subscribe", "", err)
	}
	c.started.Store(true)
	c.life.goTracked(func() { c.notify.run(c.life.ctx, first[0]) })
	for i, n := range c.shards {
		c.life.goTracked(func() { n.run(c.life.ctx, first[i+1]) })
	}
	if c.evictions != nil {
		c.life.goTracked(c.sweepEvictions)
	}
	c.life.goTracked(c.watchTopology) // it looks at once: writes soon know whether to wait for replicas
	if c.hot != nil {
		c.life.goTracked(c.watchHotKeys)
	}
	return c, nil
}

// Get returns the value of key: from the L1 if it is fresh there, else from Redis, else from
// load, which runs at most once at a time per key (per instance with the Singleflight strategy,
// across instances with Lease) while every other caller waits for its result. A stale value may
// be returned at once while one background refresh runs (see Policy).
//
// Get returns ErrNotFound when load did (now or, cached, earlier). It returns ctx.Err() when ctx
// ends first; the load goes on for the others. When Redis fails, Get still answers through the
// loader, deduplicated per instance, and reports the failure to Stats and Hooks only.
//
// After a load of key fails, on this instance or another, Get returns that load's error (or a
// stale value, under StaleIfError) without calling load, for a short back-off: see Loader and
// WithFailureBackoff. A load that does not return within the load timeout fails with
// ErrLoadTimeout; a wait for another instance's load that outlasts the load timeout plus two
// lease TTLs fails with ErrWaitTimeout.
func (c *Cache[V]) Get(ctx context.Context, key string, load Loader[V], opts ...GetOption) (V, error) {
	var zero V
	if err := c.check(key); err != nil {
		return zero, err
	}
	if load == nil {
		return zero, ErrNilLoader
	}
	p := &c.policy // read only: most calls use the cache-wide policy as it is
	if c.policyFunc != nil || len(opts) > 0 {
		q, err := c.policyFor(key, opts)
		if err != nil {
			return zero, err
		}
		p = &q
	}
	// 1. The L1: a fresh entry is served; so is a stale one the policy allows, while one
	// background refresh replaces it.
	var obs observation[V]
	if c.useL1(key, p) {
		if e, now, ok := c.l1.get(key); ok {
			switch c.judge(&e.h, now, p, e.promoted) {
			case serve:
				c.count(statL1Hits, key)
				return e.result()
			case serveAndRefresh:
				c.count(statL1Hits, key)
				c.refreshInBackground(ctx, key, p, load, &e.h, now)
				return e.result()
			case fallback:
				obs.stale = e // served only if the load fails (stale-if-error)
			}
		}
	}
	// 2. Redis: one GET (of a replica first, for a replicated key), served the same way.
	if v, err, ok := c.readL2(ctx, key, p, load, &obs); ok {
		return v, err
	}
	// 3. A miss: one flight per key in this instance runs fetch, and every caller shares it.
	c.count(statMisses, key)
	r := c.flight(ctx, key, p, load, obs)
	if r.stale != nil {
		c.servedStaleCtx(ctx, key, r.stale.FreshUntil, time.Now().UnixNano())
	}
	return r.value, r.err
}

// fetch is the body of a flight: it runs once per key at a time in this instance, for the
// callers that found no servable value.
func (c *Cache[V]) fetch(ctx context.Context, key string, p *Policy, load Loader[V], obs observation[V]) result[V] {
	// Look again: a flight that ended since this caller looked at the L1 may have filled it.
	if c.useL1(key, p) {
		if e, now, ok := c.l1.get(key); ok && c.judge(&e.h, now, p, e.promoted) == serve {
			v, err := e.result()
			return result[V]{value: v, err: err}
		}
	}
	// Back off: if the key's last load failed moments ago, here or elsewhere, share its error.
	if err, ok := c.failures.active(key, time.Now().UnixNano()); ok {
		return c.failed(err, obs)
	}
	// Load alone when Redis failed, or holds another schema version's fresh value (see
	// WithVersion); else take the key's lease (lock.go), or wait for the
	// instance that holds it. The holder loads, fills Redis and notifies the waiters (load.go).
	if obs.redisDown || obs.foreign {
		return c.loadAlone(ctx, key, p, load, obs)
	}
	return c.acquire(ctx, key, p, load, obs)
}

// check rejects calls after Close and keys Redis should not get.
func (c *Cache[V]) check(key string) error {
	if c.life.closed.Load() {
		return ErrClosed
	}
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: %d bytes (1 to %d allowed)", ErrInvalidKey, len(key), MaxKeyLen)
	}
	return nil
}

func (c *Cache[V]) newToken() string {
	return c.instance + fmt.Sprint(c.tokens.Add(1))
}

// Close stops the cache: it ends the subscription, cancels the loads and refreshes this
// instance runs, releases their leases where Redis allows, and waits for every goroutine of the
// cache to return, each Redis call within the Redis timeout. It waits at most one second more
// for loaders to return after their ctx ended: a loader that ignores its ctx is left running,
// and what it returns is dropped. Calls after Close return ErrClosed. Close is idempotent and
// returns nil; it does not close the Redis client.
func (c *Cache[V]) Close() error {
	if c.life.close(c.closeSubscriptions) {
		c.stop()
	}
	return nil
}

// subscribeAll subscribes to the namespace's channel and to every eviction stripe's, each
// within the Redis timeout. It returns the subscriptions it confirmed (nil for the others), in
// that order, and the first error.
func (c *Cache[V]) subscribeAll() ([]*redis.PubSub, error) {
	subs := make([]*redis.PubSub, 1+len(c.shards))
	lines := append([]*notifier{&c.notify}, c.shards...)
	for i, n := range lines {
		ps, err := n.subscribe(c.life.ctx)
		if err != nil {
			// The run loops subscribe again; until every line is confirmed none counts.
			for j, ps := range subs[:i] {
				lines[j].closePubSub(ps)
			}
			return make([]*redis.PubSub, len(subs)), err
		}
		subs[i] = ps
	}
	return subs, nil
}

func (c *Cache[V]) closeSubscriptions() {
	c.notify.close()
	for _, n := range c.shards {
		n.close()
	}
}

// stop stops what New started besides goroutines: the back-off's and the L1's, and the clock.
func (c *Cache[V]) stop() {
	c.failures.close()
	if c.l1 != nil {
		c.l1.close()
	}
	c.clock.Stop()
}
