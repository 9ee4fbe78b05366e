package stampede

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// observation is what a caller found before it started a flight.
type observation[V any] struct {
	seen      []byte      // generation bytes of the envelope read from Redis, nil if none
	stale     *l1Entry[V] // a value to serve if the load fails (stale-if-error), or nil
	redisDown bool        // the read failed: load without Redis
	foreign   bool        // Redis holds another schema version's fresh value: load for the L1
	since     mark        // the L1's mark before the read (see l1.store)
	replica   string      // the replica that missed and should get a copy of the primary
	refresh   bool        // the load is a Refresh's: its fill is a write, acknowledged by replicas
}

// flight runs fetch once per key at a time in this instance, on a goroutine of its own, and
// shares its result with the callers that were waiting when it started; callers that arrive
// while it runs share the next one. Each caller stops waiting when its own ctx ends; the flight
// goes on for the others. While the key's last load is backing off, no flight starts: every
// caller gets that load's error, or a stale value (stale-if-error).
func (c *Cache[V]) flight(ctx context.Context, key string, p *Policy, load Loader[V], obs observation[V]) result[V] {
	if err, ok := c.failures.active(key, time.Now().UnixNano()); ok {
		return c.failed(err, obs)
	}
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

// lead loads while holding the lease (extending it as long as the load runs), then writes the
// value under the fence and tells the waiters.
func (c *Cache[V]) lead(ctx context.Context, key string, k scripts.Keys, token, fence string, p *Policy, load Loader[V], obs observation[V]) result[V] {
	stop := func() {}
	if p.Strategy == Lease {
		stop = c.keepLease(key, k, token)
	}
	l := c.runLoad(ctx, key, p, load, true)
	stop()
	return c.settle(ctx, key, k, token, fence, p, l, obs)
}

// loaded is the outcome of one call of a loader, and what is to be written of it.
type loaded[V any] struct {
	value V
	took  time.Duration
	// err is nil, ErrNotFound (possibly wrapped), or a failure: the loader's error, a
	// *PanicError, an ErrLoadTimeout, or an error encoding the value.
	err error
	// cancelled: the load ended only because its caller's ctx ended, or Close: that is no
	// failure of the source, and err is the ctx's error.
	cancelled bool
	h         envelope.Header // of the value, or of the not-found entry to cache
	fresh     time.Duration   // h's fresh lifetime
	env       []byte          // the envelope to write; nil if nothing is to be written
	chosen    *chosenTTL      // what the loader chose with SetTTL
	uncached  bool            // the loader chose not to cache what it returned (SetTTL <= 0)
}

// errLoadDeadline is the cause of a load's context ending at the load timeout, which tells it
// apart from the cancellation of the context the load follows.
var errLoadDeadline = errors.New("stampede: load timeout")

// runLoad calls load and prepares what is to be written: the value's envelope, or the
// not-found entry if the policy caches it. Without encode (a load kept in the L1 only), the
// value is not encoded. It reports the load to Stats and Hooks once, with the final error.
func (c *Cache[V]) runLoad(ctx context.Context, key string, p *Policy, load Loader[V], encode bool) loaded[V] {
	lctx, span := c.tracer.start(ctx, Span{Op: SpanLoad, Key: key}) // the loader's spans nest in it
	l := c.callLoader(lctx, key, load)
	span.done(l.err)
	return c.prepare(key, p, l, encode)
}

// prepare prepares what is to be written of a load of key (runLoad's, or a key's part of a
// batch load), and reports it to Stats and Hooks.
func (c *Cache[V]) prepare(key string, p *Policy, l loaded[V], encode bool) loaded[V] {
	now := time.Now()
	ttl, negative, chosen := l.chosen.ttls(p)
	switch {
	case l.cancelled:
	case l.err == nil && ttl <= 0:
		l.uncached = true
	case l.err == nil:
		l.h, l.fresh = c.header(now, ttl, l.took, 0)
		if encode {
			l.env, l.err = c.encode(l.h, l.value)
		}
	case errors.Is(l.err, ErrNotFound) && negative > 0:
		l.h, l.fresh = c.header(now, negative, l.took, envelope.FlagNegative)
		l.env = envelope.Append(nil, l.h)
	case errors.Is(l.err, ErrNotFound) && chosen:
		l.uncached = true
	}
	c.stats.Add(statLoads)
	if l.err != nil && !l.cancelled && !errors.Is(l.err, ErrNotFound) {
		c.stats.Add(statLoadErrors)
	}
	c.hooks.load(key, l.took, l.err)
	return l
}

// callLoader calls load on a goroutine of its own, under the load timeout, and waits for it
// until it returns or its ctx ends, whichever comes first: a loader that ignores its ctx is
// abandoned (its goroutine ends when it returns, and what it returns is dropped). A panic is
// recovered as a *PanicError. Whether a load that ended with its ctx failed (the load timeout)
// or was cancelled (ctx, which is the caller's or ends at Close) is decided by the state of the
// contexts, not by the error the loader returned.
func (c *Cache[V]) callLoader(ctx context.Context, key string, load Loader[V]) loaded[V] {
	lctx, cancel := context.WithTimeoutCause(ctx, c.loadTimeout, errLoadDeadline)
	defer cancel()
	lctx, chosen := withChosenTTL(lctx)
	start := time.Now()
	done := make(chan loaded[V], 1)
	if !c.life.goLoader(func() {
		var l loaded[V]
		if p := userCall(func() { l.value, l.err = load(lctx, key) }); p != nil {
			l.err = p
		}
		done <- l
	}) {
		return loaded[V]{err: ErrClosed, cancelled: true}
	}
	var l loaded[V]
	returned := true
	select {
	case l = <-done:
	case <-lctx.Done():
		returned = false
	}
	l.took = time.Since(start)
	if returned {
		l.chosen = chosen
	}
	if lctx.Err() != nil && (!returned || l.err != nil) {
		var zero V
		l.value = zero
		if context.Cause(lctx) == errLoadDeadline {
			l.err = fmt.Errorf("%w after %v: %w", ErrLoadTimeout, c.loadTimeout, context.DeadlineExceeded)
		} else {
			l.err, l.cancelled = ctx.Err(), true
		}
	}
	return l
}

// settle ends a load: it writes the value (or the not-found) under the fence, or releases the
// lease and tells the waiters why.
func (c *Cache[V]) settle(ctx context.Context, key string, k scripts.Keys, token, fence string, p *Policy, l loaded[V], obs observation[V]) result[V] {
	// The load is over: its write, or the release of its lease, must happen even if the caller
	// or Close ended the load meanwhile (each Redis call is still bounded by the Redis timeout).
	ctx = context.WithoutCancel(ctx)
	now := time.Now().UnixNano()
	switch {
	case l.cancelled:
		// Not a failure of the source: the lease goes, and a waiter takes it over.
		c.release(ctx, k, token, key, nil)
		return result[V]{err: l.err}
	case l.env != nil && l.h.WrittenAt < c.topo.staleBefore.Load():
		// The load began before an InvalidateAll (or a restart): what it read is not written.
		c.release(ctx, k, token, key, nil)
		return result[V]{value: l.value, err: l.err}
	case l.env != nil:
		c.fill(ctx, key, k, token, fence, p, l, obs)
		return result[V]{value: l.value, err: l.err}
	case l.uncached:
		// The loader chose not to cache it: the lease goes, and a waiter elsewhere loads.
		c.release(ctx, k, token, key, nil)
		return result[V]{value: l.value, err: l.err}
	case errors.Is(l.err, ErrNotFound):
		c.release(ctx, k, token, key, l.err)
		return result[V]{err: l.err}
	}
	// Record the failure before the release publishes it, so that this instance's own message
	// does not count as a second failure.
	c.failures.record(key, l.err, now, c.rand(), false)
	if errors.Is(l.err, ErrLoadTimeout) {
		// This loader is stuck, not necessarily the source: let a waiter load with its own.
		c.release(ctx, k, token, key, nil)
	} else {
		c.release(ctx, k, token, key, l.err)
	}
	return c.failed(l.err, obs)
}

// fill writes a loaded envelope under the fence and keeps it in the L1 unless a newer write
// fenced it out.
func (c *Cache[V]) fill(ctx context.Context, key string, k scripts.Keys, token, fence string, p *Policy, l loaded[V], obs observation[V]) {
	since := c.l1Now()
	var ack scripts.Ack
	if obs.refresh {
		ack = c.ack() // a Refresh is a write: it must survive a failover once it returned
	}
	sctx, span := c.tracer.start(ctx, Span{Op: SpanRedisFill, Key: key})
	rctx, cancel := c.redisContext(sctx)
	route, stripe := c.route(rctx, key, k.Value)
	w, ok, err := scripts.Fill(rctx, c.client, k, scripts.FillArgs{
		Token: leaseToken(token, p), Fence: fence, Envelope: l.env, Ack: ack,
		TTL: p.hardTTL(l.fresh), GenTTL: c.genTTL, Channel: route, Key: key,
	})
	cancel()
	c.wrote(stripe, w.Opened || err != nil)
	gen := w.Gen
	span.done(err)
	h := l.h
	switch {
	case err != nil:
		// The value is good, Redis is not: serve it from this instance, with generation 0 (any
		// message evicts it) and as new as the load's start, and let the lease expire.
		c.redisFailed("fill", key, err)
		since = obs.since
	case !ok:
		c.stats.Add(statFencedLoads)
		return
	default:
		h.Gen = gen
		if n := c.replicasOf(key, p); n > 0 {
			c.writeReplicas(ctx, key, n, l.env, gen, h, p)
		}
	}
	c.keep(key, l.value, h, len(l.env), p, since)
}

// leaseToken is the token a fill under p presents: none without a lease (Singleflight).
func leaseToken(token string, p *Policy) string {
	if p.Strategy == Singleflight {
		return ""
	}
	return token
}

// loadAlone loads without Redis, which failed: the flight still makes it one load per key in
// this instance, and the value is kept in the L1 only.
func (c *Cache[V]) loadAlone(ctx context.Context, key string, p *Policy, load Loader[V], obs observation[V]) result[V] {
	l := c.runLoad(ctx, key, p, load, false)
	switch {
	case l.cancelled:
		return result[V]{err: l.err}
	case l.uncached:
		return result[V]{value: l.value, err: l.err}
	case l.err == nil || l.env != nil: // a value, or a not-found to cache
		c.keep(key, l.value, l.h, len(l.env), p, obs.since)
		return result[V]{value: l.value, err: l.err}
	case errors.Is(l.err, ErrNotFound):
		return result[V]{err: l.err}
	}
	c.failures.record(key, l.err, time.Now().UnixNano(), c.rand(), false)
	return c.failed(l.err, obs)
}

// failed returns the stale value a failed load may fall back to (stale-if-error), or err. Each
// caller that receives a stale value counts it.
func (c *Cache[V]) failed(err error, obs observation[V]) result[V] {
	if obs.stale == nil || errors.Is(err, ErrNotFound) {
		return result[V]{err: err}
	}
	v, verr := obs.stale.result()
	return result[V]{value: v, err: verr, stale: &obs.stale.h}
}

// header returns the header of a value written now, after a load that took took, that stays
// fresh for ttl less jitter, and that fresh lifetime. The value is dated when its load began:
// what it holds may be as old as that, and an InvalidateAll made meanwhile must find it stale.
func (c *Cache[V]) header(now time.Time, ttl, took time.Duration, flags envelope.Flags) (envelope.Header, time.Duration) {
	fresh := c.jittered(ttl)
	n := now.UnixNano()
	return envelope.Header{Flags: flags, WrittenAt: n - int64(took), FreshUntil: n + int64(fresh), LoadTime: took}, fresh
}
