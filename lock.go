package stampede

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/scripts"
)

const (
	// leaseSlack is how long after a lease's expiry a waiter looks again, so that it finds the
	// lease gone rather than about to go.
	leaseSlack = 5 * time.Millisecond
	// maxErrText bounds the error text a failed load publishes to waiters.
	maxErrText = 1024
)

// acquire takes the key's lease (or, with the Singleflight strategy, only its fence) and loads;
// when another instance holds the lease it waits for that instance's notification and then
// looks again, and takes the lease itself if the holder died.
func (c *Cache[V]) acquire(ctx context.Context, key string, p *Policy, load Loader[V], obs observation[V]) result[V] {
	k := scripts.KeysFor(c.namespace, key)
	token := c.newToken()
	var waitStart time.Time
	defer func() {
		if !waitStart.IsZero() {
			c.hooks.leaseWait(key, time.Since(waitStart))
		}
	}()
	giveUp := time.Now().Add(c.loadTimeout + 2*c.leaseTTL)
	for {
		var w *waiter
		if p.Strategy == Lease {
			// Watch before asking, so that a notification sent in between is not missed.
			w = c.notify.watch(key)
		}
		since := c.l1Now()
		lr, err := c.lease(ctx, key, k, token, obs.seen, p.Strategy == Singleflight)
		if err != nil || lr.State != scripts.Held {
			if w != nil {
				c.notify.unwatch(w)
			}
		}
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return result[V]{err: ErrClosed}
			}
			if err != errCircuitOpen {
				c.redisFailed("lease", key, err)
			}
			return c.loadAlone(ctx, key, p, load, obs)
		case lr.State == scripts.Changed:
			if r, ok := c.adopt(ctx, key, []byte(lr.Value), since, p, load, &obs); ok {
				return r
			}
			// It changed into something nobody may serve: ask again with what it is now.
		case lr.State == scripts.Acquired:
			return c.lead(ctx, key, k, token, lr.Fence, p, load, obs)
		default: // Held
			if waitStart.IsZero() {
				waitStart = time.Now()
				c.stats.Add(statLeaseWaits)
			}
			m, err := c.await(ctx, w, lr.Remaining)
			c.notify.unwatch(w)
			if err != nil {
				return result[V]{err: err}
			}
			switch {
			case m.Kind == scripts.Failed:
				return c.failed(&remoteError{msg: m.Err, notFound: m.NotFound}, obs)
			case m.Kind == scripts.Filled && m.Value != "":
				// The fill sent its value: take it rather than read Redis, which may have
				// evicted it already.
				if r, ok := c.adopt(ctx, key, []byte(m.Value), since, p, load, &obs); ok {
					return r
				}
			}
		}
		if time.Now().After(giveUp) {
			return result[V]{err: fmt.Errorf("%w (key %q)", ErrWaitTimeout, key)}
		}
	}
}

// lease runs the lease script with the cache's timeout, unless the circuit is open.
func (c *Cache[V]) lease(ctx context.Context, key string, k scripts.Keys, token string, seen []byte, noLock bool) (scripts.LeaseResult, error) {
	if !c.breaker.Allow(time.Now().UnixNano()) {
		return scripts.LeaseResult{}, errCircuitOpen
	}
	rctx, cancel := c.redisContext(ctx)
	defer cancel()
	if seen == nil {
		seen = []byte{}
	}
	r, err := scripts.Lease(rctx, c.client, k, scripts.LeaseArgs{
		Token: token, LeaseTTL: c.leaseTTL, GenTTL: c.genTTL, Seen: seen, NoLock: noLock,
	})
	switch {
	case err == nil:
		c.breaker.Success()
	case ctx.Err() != nil:
		c.breaker.Abandon()
	case !noLock:
		// The script may still run when Redis gets it, and take the lease for this token,
		// which nobody would then load under: release it once Redis answers.
		c.orphan(k, token, key)
	}
	return r, err
}

// adopt takes a value that changed in Redis while the caller looked: it returns it if it may be
// served, and otherwise records it in obs for the next look.
func (c *Cache[V]) adopt(ctx context.Context, key string, raw []byte, since mark, p *Policy, load Loader[V], obs *observation[V]) (result[V], bool) {
	obs.seen = seenGen(raw)
	e, ok := c.decode(key, raw)
	if !ok {
		return result[V]{}, false
	}
	now := time.Now().UnixNano()
	switch v := c.judge(&e.h, now, p, c.hot.isPromoted(key)); v {
	case serve, serveAndRefresh:
		c.keep(key, e.value, e.h, p, since)
		if v == serveAndRefresh {
			c.refreshInBackground(ctx, key, p, load, &e.h, now)
		}
		val, err := e.result()
		return result[V]{value: val, err: err}, true
	case fallback:
		obs.stale = escape(e)
	}
	return result[V]{}, false
}

// await waits for a message about the key, or until the lease would have expired, or at most
// pollEvery: then the caller looks at Redis again. The poll bounds what a lost notification
// costs: Redis may evict the wait mark under memory pressure, so that the holder's fill does
// not publish, or the subscription may be down.
func (c *Cache[V]) await(ctx context.Context, w *waiter, left time.Duration) (scripts.Message, error) {
	d := min(max(left, time.Millisecond)+leaseSlack, pollEvery)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case m := <-w.c:
		return m, nil
	case <-t.C:
		return scripts.Message{Kind: scripts.Released}, nil
	case <-ctx.Done():
		return scripts.Message{}, ErrClosed
	}
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

// keepLease extends the lease every third of its TTL until stop is called, so that a load
// slower than the lease TTL does not let a second one start. The load's own deadline (the load
// timeout) ends it: a loader that ignores its ctx cannot hold the lease for longer.
func (c *Cache[V]) keepLease(key string, k scripts.Keys, token string) (stop func()) {
	done := make(chan struct{})
	c.life.goTracked(func() {
		t := time.NewTicker(c.leaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-c.life.ctx.Done():
				return
			case <-t.C:
			}
			rctx, cancel := c.redisContext(c.life.ctx)
			held, err := scripts.Extend(rctx, c.client, k, token, c.leaseTTL)
			cancel()
			if err != nil {
				c.redisFailed("extend", key, err)
				continue
			}
			if !held {
				// A Refresh took the lease, or it expired; the fence still guards the write.
				return
			}
		}
	})
	return func() { close(done) }
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
}

// errLoadDeadline is the cause of a load's context ending at the load timeout, which tells it
// apart from the cancellation of the context the load follows.
var errLoadDeadline = errors.New("stampede: load timeout")

// runLoad calls load and prepares what is to be written: the value's envelope, or the
// not-found entry if the policy caches it. Without encode (a load kept in the L1 only), the
// value is not encoded. It reports the load to Stats and Hooks once, with the final error.
func (c *Cache[V]) runLoad(ctx context.Context, key string, p *Policy, load Loader[V], encode bool) loaded[V] {
	l := c.callLoader(ctx, key, load)
	now := time.Now()
	switch {
	case l.cancelled:
	case l.err == nil:
		l.h, l.fresh = c.header(now, p.TTL, l.took, 0)
		if encode {
			l.env, l.err = c.encode(l.h, l.value)
		}
	case errors.Is(l.err, ErrNotFound) && p.NegativeTTL > 0:
		l.h, l.fresh = c.header(now, p.NegativeTTL, l.took, envelope.FlagNegative)
		l.env = envelope.Append(nil, l.h)
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
	case l.env != nil:
		c.fill(ctx, key, k, token, fence, p, l, obs)
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
	rctx, cancel := c.redisContext(ctx)
	gen, ok, err := scripts.Fill(rctx, c.client, k, scripts.FillArgs{
		Token: leaseToken(token, p), Fence: fence, Envelope: l.env, Ack: ack,
		TTL: p.hardTTL(l.fresh), GenTTL: c.genTTL, Channel: c.channel, Key: key,
	})
	cancel()
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
	c.keep(key, l.value, h, p, since)
}

// leaseToken is the token a fill under p presents: none without a lease (Singleflight).
func leaseToken(token string, p *Policy) string {
	if p.Strategy == Singleflight {
		return ""
	}
	return token
}

// release gives up the lease and tells the waiters why: that the load failed with loadErr, or
// with a nil loadErr only that the lease is free.
func (c *Cache[V]) release(ctx context.Context, k scripts.Keys, token, key string, loadErr error) {
	if token == "" {
		return
	}
	msg := scripts.Message{Kind: scripts.Released, Key: key}
	if loadErr != nil {
		text := loadErr.Error()
		if len(text) > maxErrText {
			text = text[:maxErrText]
		}
		msg = scripts.Message{Kind: scripts.Failed, Key: key, NotFound: errors.Is(loadErr, ErrNotFound), Err: text}
	}
	rctx, cancel := c.redisContext(ctx)
	err := scripts.Release(rctx, c.client, k, token, c.channel, msg.Append(nil))
	cancel()
	if err != nil {
		c.redisFailed("release", key, err)
	}
}

// loadAlone loads without Redis, which failed: the flight still makes it one load per key in
// this instance, and the value is kept in the L1 only.
func (c *Cache[V]) loadAlone(ctx context.Context, key string, p *Policy, load Loader[V], obs observation[V]) result[V] {
	l := c.runLoad(ctx, key, p, load, false)
	switch {
	case l.cancelled:
		return result[V]{err: l.err}
	case l.err == nil || l.env != nil: // a value, or a not-found to cache
		c.keep(key, l.value, l.h, p, obs.since)
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

// header returns the header of a value written now that stays fresh for ttl less jitter, and
// that fresh lifetime.
func (c *Cache[V]) header(now time.Time, ttl, took time.Duration, flags envelope.Flags) (envelope.Header, time.Duration) {
	fresh := c.jittered(ttl)
	n := now.UnixNano()
	return envelope.Header{Flags: flags, WrittenAt: n, FreshUntil: n + int64(fresh), LoadTime: took}, fresh
}
