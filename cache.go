package stampede

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede/internal/breaker"
	"github.com/stampede-cache/stampede/internal/coarse"
	"github.com/stampede-cache/stampede/internal/envelope"
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

// redisClient lists the go-redis methods the cache calls. Client and ClusterClient (and the
// failover clients, which are of these types) have them.
type redisClient interface {
	Get(ctx context.Context, key string) *redis.StringCmd
	Set(ctx context.Context, key string, value any, expiration time.Duration) *redis.StatusCmd
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
	Info(ctx context.Context, sections ...string) *redis.StringCmd
	scripts.Scripter
}

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
	writeAcks     int
	hooks         *hooks
	log           *slog.Logger

	l1        *l1[V]   // nil when no key may use it
	hot       *hotKeys // nil when detection is off
	failures  *failures
	reads     *flight.Group[readResult] // one GET of a key at a time in this instance
	flights   *flight.Group[result[V]]  // one load (or lease wait) of a key at a time
	notify    notifier
	refreshes refreshes
	orphans   orphans
	breaker   *breaker.Breaker // skips Redis on the read path while it keeps failing
	topo      topology
	clock     *coarse.Clock // read on every L1 hit: a load, not a system call
	life      *lifecycle
	stats     *stripe.Counters

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
// timeout; if Redis does not confirm the subscription, New logs it and succeeds: waiters then
// poll, and a goroutine keeps trying to subscribe.
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
		hooks:         &hooks{Hooks: cfg.hooks, log: cfg.loud()},
		log:           cfg.logger,
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
		l1, err := newL1[V](cfg.l1Size, cfg.l1TTL, cfg.floorTTL(), c.clock, cfg.logger)
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
	first, err := c.notify.subscribe(c.life.ctx)
	if err == nil {
		c.notify.confirmed()
	} else {
		c.log.Warn("stampede: cannot subscribe to the namespace's channel; until a subscription succeeds, "+
			"waiters poll Redis and the L1 keeps entries only 100 ms",
			"channel", c.channel, "err", err)
		c.redisFailed("subscribe", "", err)
	}
	c.life.goTracked(func() { c.notify.run(c.life.ctx, first) })
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
				obs.stale = e
			}
		}
	}
	return c.getL2(ctx, key, p, load, obs)
}

// count counts a Get in one of L1Hits, L2Hits and Misses (each Get counts in exactly one), and
// the count, which numbers the Get, samples it for hot-key detection at no extra cost.
func (c *Cache[V]) count(stat int, key string) {
	if n := c.stats.Add(stat); c.hot != nil && c.hot.detector.Sampled(n) {
		c.hot.detector.Count(key)
	}
}

// getL2 is Get after the L1: one GET (of a replica first, for a replicated key), and a flight
// if what it read cannot be served.
func (c *Cache[V]) getL2(ctx context.Context, key string, p *Policy, load Loader[V], obs observation[V]) (V, error) {
	obs.since = c.l1Now()
	if n := c.replicasOf(key, p); n > 0 {
		if v, err, ok := c.readReplica(ctx, key, n, p, load, &obs); ok {
			return v, err
		}
	}
	raw, _, err := c.read(ctx, scripts.ValueKey(c.namespace, key), key, false)
	switch {
	case err != nil:
		if ctx.Err() != nil {
			var zero V
			return zero, ctx.Err()
		}
		obs.redisDown = true
	case raw != nil:
		obs.seen = seenGen(raw)
		if e, ok := c.decode(key, raw); ok {
			now := time.Now().UnixNano()
			switch v := c.judge(&e.h, now, p, c.hot.isPromoted(key)); v {
			case serve, serveAndRefresh:
				c.count(statL2Hits, key)
				c.keep(key, e.value, e.h, p, obs.since)
				if v == serveAndRefresh {
					c.refreshInBackground(ctx, key, p, load, &e.h, now)
				}
				if obs.replica != "" && v == serve {
					c.copyToReplica(obs.replica, raw, e.h, p) // a fresh value only
				}
				return e.result()
			case fallback:
				obs.stale = escape(e)
			}
		}
	}
	c.count(statMisses, key)
	var r result[V]
	if err, ok := c.failures.active(key, time.Now().UnixNano()); ok {
		// The key's last load failed moments ago: do not send every caller to the source.
		r = c.failed(err, obs)
	} else {
		r = c.flight(ctx, key, p, load, obs)
	}
	if r.stale != nil {
		c.stats.Add(statStaleServed)
		c.hooks.staleServed(key, time.Duration(time.Now().UnixNano()-r.stale.FreshUntil))
	}
	return r.value, r.err
}

// readResult is the reply to a GET of a key's envelope.
type readResult struct {
	raw []byte
	ttl time.Duration // the key's remaining TTL, when asked for
	err error
}

// read returns the value of the Redis key rk (the envelope of key, or of one of its replicas),
// from a GET that began after this call did, and with withTTL, the key's remaining TTL (0 if
// it has none). Concurrent callers share GETs of a Redis key: the first reads on its own
// goroutine, and the callers that arrive while it reads share the next GET, which starts when
// it ends.
func (c *Cache[V]) read(ctx context.Context, rk, key string, withTTL bool) ([]byte, time.Duration, error) {
	if l, ok := c.reads.Lead(rk); ok {
		r := c.redisGet(ctx, rk, key, withTTL)
		c.reads.End(l)
		return r.raw, r.ttl, r.err
	}
	// This read serves other callers too: it must not end with this caller's ctx.
	detached := context.WithoutCancel(ctx)
	r, err := c.reads.Board(ctx, rk, func() readResult {
		return c.redisGet(detached, rk, key, withTTL)
	}, true)
	if err != nil {
		return nil, 0, err
	}
	return r.raw, r.ttl, r.err
}

// observation is what a caller found before it started a flight.
type observation[V any] struct {
	seen      []byte      // generation bytes of the envelope read from Redis, nil if none
	stale     *l1Entry[V] // a value to serve if the load fails (stale-if-error), or nil
	redisDown bool        // the read failed: load without Redis
	since     mark        // the L1's mark before the read (see l1.store)
	replica   string      // the replica that missed and should get a copy of the primary
	refresh   bool        // the load is a Refresh's: its fill is a write, acknowledged by replicas
}

// result is the outcome of a flight, shared by every caller that joined it.
type result[V any] struct {
	value V
	err   error
	stale *envelope.Header // set when value is a stale one served because a load failed
}

// escape returns a pointer to a copy of e, so that only the branch that needs a pointer to an
// entry moves one to the heap, not every Get that holds an entry.
func escape[V any](e l1Entry[V]) *l1Entry[V] { return &e }

// result returns what a Get of the entry returns.
func (e *l1Entry[V]) result() (V, error) {
	if e.h.Negative() {
		var zero V
		return zero, ErrNotFound
	}
	return e.value, nil
}

// flight runs fetch once per key at a time in this instance, on a goroutine of its own, and
// shares its result with the callers that were waiting when it started; callers that arrive
// while it runs share the next one. Each caller stops waiting when its own ctx ends; the flight
// goes on for the others.
func (c *Cache[V]) flight(ctx context.Context, key string, p *Policy, load Loader[V], obs observation[V]) result[V] {
	pol := *p
	r, err := c.flights.Board(ctx, key, func() result[V] {
		fctx, cancel := c.life.detach(ctx)
		defer cancel()
		r := c.fetch(fctx, key, &pol, load, obs)
		if r.err != nil && c.life.closed.Load() {
			r.err = ErrClosed // the load was cancelled by Close, not by a caller
		}
		return r
	}, false)
	if err != nil {
		return result[V]{err: err}
	}
	return r
}

// fetch is the body of a flight: it runs once per key at a time in this instance, for callers
// that found no servable value.
func (c *Cache[V]) fetch(ctx context.Context, key string, p *Policy, load Loader[V], obs observation[V]) result[V] {
	// A flight that ended between this caller's look at the L1 and the start of this one may
	// have filled the L1: use that rather than load again.
	if c.useL1(key, p) {
		if e, now, ok := c.l1.get(key); ok && c.judge(&e.h, now, p, e.promoted) == serve {
			v, err := e.result()
			return result[V]{value: v, err: err}
		}
	}
	if err, ok := c.failures.active(key, time.Now().UnixNano()); ok {
		// The previous flight's load failed moments ago: its back-off holds for this one too.
		return c.failed(err, obs)
	}
	if obs.redisDown {
		return c.loadAlone(ctx, key, p, load, obs)
	}
	return c.acquire(ctx, key, p, load, obs)
}

// decode parses an envelope read from Redis. A value that is not an envelope, or whose payload
// the codec rejects, is a miss; the next fill overwrites it.
func (c *Cache[V]) decode(key string, raw []byte) (l1Entry[V], bool) {
	h, payload, err := envelope.Parse(raw)
	if err == nil && !h.Negative() {
		var v V
		if p := userCall(func() { err = c.codec.Unmarshal(payload, &v) }); p != nil {
			err = p
		}
		if err == nil {
			return l1Entry[V]{value: v, h: h}, true
		}
		c.stats.Add(statCodecErrors)
	}
	if err != nil {
		c.log.Warn("stampede: treating an unreadable Redis value as a miss", "key", key, "err", err)
		return l1Entry[V]{}, false
	}
	return l1Entry[V]{h: h}, true
}

// seenGen returns the bytes of raw that the lease script compares to tell whether the value
// changed: the generation of an envelope, whatever stands there in anything else.
func seenGen(raw []byte) []byte {
	return raw[min(envelope.GenOffset, len(raw)):min(envelope.GenOffset+8, len(raw))]
}

// useL1 reports whether a call for key under p uses the L1: its policy does, or the key is hot
// and promoted.
func (c *Cache[V]) useL1(key string, p *Policy) bool {
	return c.l1 != nil && (!p.SkipL1 || c.hot.isPromoted(key))
}

// keep stores what was read or written for key in the L1, if the key uses it, for as long as
// p may serve it (and the L1 TTL allows); since is the L1's mark before the read or write
// began (l1Now).
func (c *Cache[V]) keep(key string, v V, h envelope.Header, p *Policy, since mark) {
	c.keepAtMost(key, v, h, p, since, 0)
}

// keepAtMost is keep, for at most limit if it is not 0.
func (c *Cache[V]) keepAtMost(key string, v V, h envelope.Header, p *Policy, since mark, limit time.Duration) {
	if c.l1 == nil {
		return
	}
	promoted := c.hot.isPromoted(key)
	if p.SkipL1 && !promoted {
		return
	}
	ttl := c.l1.ttl
	if promoted {
		ttl = c.hot.cfg.PromotedL1TTL
	}
	if limit > 0 {
		ttl = min(ttl, limit)
	}
	if !c.notify.subscribed.Load() {
		// No message can evict it: it may serve a replaced value only briefly.
		ttl = min(ttl, unsubscribedL1TTL)
	}
	c.l1.store(key, l1Entry[V]{value: v, h: h, promoted: promoted}, since, c.keepUntil(&h, p), ttl)
}

// unsubscribedL1TTL bounds how long the L1 keeps what it stores while no subscription carries
// the messages that evict it: so long may an instance serve a value another instance replaced.
const unsubscribedL1TTL = 100 * time.Millisecond

// l1Now is what a reader notes before it reads Redis or loads, for keep.
func (c *Cache[V]) l1Now() mark {
	if c.l1 == nil {
		return mark{}
	}
	return c.l1.mark()
}

// keepUntil is when an entry stops being of any use under p (Unix nanoseconds).
func (c *Cache[V]) keepUntil(h *envelope.Header, p *Policy) int64 {
	return h.FreshUntil + int64(max(p.StaleWhileRevalidate, p.StaleIfError))
}

const (
	// breakerThreshold Redis calls failing in a row open the circuit: for breakerCooldown, reads
	// skip Redis and go to the loader (still once per key per instance), so that callers do not
	// each wait for a Redis timeout; then one read tries Redis again.
	breakerThreshold = 5
	breakerCooldown  = 250 * time.Millisecond
)

// errCircuitOpen stands for a Redis call the read path skipped because Redis keeps failing.
var errCircuitOpen = errors.New("stampede: Redis is failing; skipped while the circuit is open")

// redisGet reads the Redis key rk, which holds an envelope of key, and with withTTL its
// remaining TTL in the same round trip; nil without error when there is none.
func (c *Cache[V]) redisGet(ctx context.Context, rk, key string, withTTL bool) readResult {
	if !c.breaker.Allow(time.Now().UnixNano()) {
		return readResult{err: errCircuitOpen}
	}
	rctx, cancel := c.redisContext(ctx)
	var raw []byte
	var ttl time.Duration
	var err error
	if withTTL {
		var get *redis.StringCmd
		var pttl *redis.DurationCmd
		_, err = c.client.Pipelined(rctx, func(pipe redis.Pipeliner) error {
			get, pttl = pipe.Get(rctx, rk), pipe.PTTL(rctx, rk)
			return nil
		})
		if get != nil {
			raw, err = get.Bytes()
			ttl = max(pttl.Val(), 0)
		}
	} else {
		raw, err = c.client.Get(rctx, rk).Bytes()
	}
	cancel()
	if errors.Is(err, redis.Nil) {
		raw, err = nil, nil
	}
	switch {
	case err == nil:
		c.breaker.Success()
	case ctx.Err() != nil:
		c.breaker.Abandon() // the caller gave up: no news of Redis
	default:
		c.redisFailed("get", key, err)
	}
	return readResult{raw: raw, ttl: ttl, err: err}
}

// redisContext returns the context of one Redis call: ctx, with the cache's Redis timeout
// unless ctx ends sooner anyway. (A request's context usually has a deadline, and then the
// call needs no timer of its own, which saves an L2 hit five of its allocations.)
func (c *Cache[V]) redisContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= c.redisTimeout {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, c.redisTimeout)
}

func noCancel() {}

// redisFailed reports a failed Redis call to Stats, Hooks and the circuit breaker.
func (c *Cache[V]) redisFailed(op, key string, err error) {
	c.stats.Add(statRedisErrors)
	c.hooks.redisError(op, key, err)
	if c.breaker.Failure(time.Now().UnixNano()) {
		c.log.Warn("stampede: Redis keeps failing; reads skip it and use the loader for a while",
			"cooldown", breakerCooldown, "err", err)
		// Waiters look again now, find the circuit open and load, rather than wait for a
		// notification that a failing Redis may never send.
		c.notify.wake(scripts.Message{Kind: scripts.Released}, true)
	}
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

// policyFor returns the policy of one call.
func (c *Cache[V]) policyFor(key string, opts []GetOption) (Policy, error) {
	p := c.policy
	if c.policyFunc != nil {
		p = c.policyFunc(key)
		if p.TTL == 0 {
			p.TTL = c.policy.TTL
		}
	}
	if len(opts) > 0 {
		// Options take a pointer through an interface, which moves the policy to the heap:
		// only calls with options pay for it.
		q := p
		for _, o := range opts {
			if o == nil {
				return p, errors.New("stampede: nil GetOption")
			}
			o.applyGetOption(&q)
		}
		p = q
	}
	if c.policyFunc != nil || len(opts) > 0 {
		if err := p.validate(); err != nil {
			return p, fmt.Errorf("%w (policy of key %q)", err, key)
		}
	}
	return p, nil
}

// onMessage applies a message of the namespace's channel: a write evicts the key from the L1,
// and a failed load elsewhere starts the key's back-off here too.
func (c *Cache[V]) onMessage(m scripts.Message) {
	// Any message about a key ends another instance's refresh of it, or its lease.
	c.refreshes.clear(m.Key)
	switch m.Kind {
	case scripts.Filled, scripts.Evicted:
		if c.l1 != nil {
			c.l1.evict(m.Key, m.Gen)
		}
		if m.Kind == scripts.Filled {
			c.failures.clear(m.Key)
		}
	case scripts.Failed:
		if !m.NotFound {
			c.failures.record(m.Key, &remoteError{msg: m.Err}, time.Now().UnixNano(), c.rand(), true)
		}
	}
}

// onSubscribed runs when a subscription is confirmed: messages sent while there was none are
// lost, so the L1 may hold values replaced meanwhile.
func (c *Cache[V]) onSubscribed() {
	if c.l1 != nil {
		c.l1.clear()
	}
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
	if c.life.close(c.notify.close) {
		c.failures.close()
		if c.l1 != nil {
			c.l1.close()
		}
		c.clock.Stop()
	}
	return nil
}
