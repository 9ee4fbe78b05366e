package stampede

import (
	"context"
	"errors"
	"runtime/debug"
	"strconv"
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
			if r, ok := c.adopt(ctx, key, []byte(lr.Value), p, load, &obs); ok {
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
			if m.Kind == scripts.Failed {
				return c.failed(&remoteError{msg: m.Err, notFound: m.NotFound}, obs)
			}
		}
		if time.Now().After(giveUp) {
			return result[V]{err: errors.New("stampede: gave up waiting for the load of " + key)}
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
func (c *Cache[V]) adopt(ctx context.Context, key string, raw []byte, p *Policy, load Loader[V], obs *observation[V]) (result[V], bool) {
	obs.seen = seenGen(raw)
	e, ok := c.decode(key, raw)
	if !ok {
		return result[V]{}, false
	}
	now := time.Now().UnixNano()
	switch v := c.judge(&e.h, now, p, c.hot.isPromoted(key)); v {
	case serve, serveAndRefresh:
		c.keep(key, e.value, e.h, now, p, obs.epoch)
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

// await waits for a message about the key, or until the lease would have expired, or, while no
// subscription carries messages, for the polling interval.
func (c *Cache[V]) await(ctx context.Context, w *waiter, left time.Duration) (scripts.Message, error) {
	d := max(left, time.Millisecond) + leaseSlack
	if !c.notify.subscribed.Load() {
		d = min(d, pollEvery)
	}
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
	v, took, err := c.callLoader(ctx, key, load)
	stop()
	return c.settle(ctx, key, k, token, fence, p, v, took, err, obs)
}

// keepLease extends the lease every third of its TTL until stop is called, so that a load
// slower than the lease TTL does not let a second one start.
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

// callLoader calls load under the cache's load timeout and turns a panic into a *PanicError.
func (c *Cache[V]) callLoader(ctx context.Context, key string, load Loader[V]) (v V, took time.Duration, err error) {
	lctx, cancel := context.WithTimeout(ctx, c.loadTimeout)
	defer cancel()
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = &PanicError{Value: r, Stack: stack()}
		}
		took = time.Since(start)
		c.stats.Add(statLoads)
		if err != nil && !errors.Is(err, ErrNotFound) {
			c.stats.Add(statLoadErrors)
		}
		c.hooks.load(key, took, err)
	}()
	v, err = load(lctx, key)
	return v, 0, err
}

func stack() []byte { return debug.Stack() }

// settle ends a load: it writes the value (or the not-found) under the fence, or releases the
// lease and tells the waiters that the load failed.
func (c *Cache[V]) settle(ctx context.Context, key string, k scripts.Keys, token, fence string, p *Policy, v V, took time.Duration, loadErr error, obs observation[V]) result[V] {
	// The load is over: its write, or the release of its lease, must happen even if Close
	// cancelled the load meanwhile (each Redis call is still bounded by the Redis timeout).
	ctx = context.WithoutCancel(ctx)
	now := time.Now()
	if loadErr != nil && c.life.closed.Load() && errors.Is(loadErr, context.Canceled) {
		// Close cancelled the load: the lease goes, and waiters elsewhere take it over.
		c.release(ctx, k, token, key, nil)
		return result[V]{err: ErrClosed}
	}
	switch {
	case loadErr == nil:
		h, fresh := c.header(now, p.TTL, took, 0)
		env, err := c.encode(h, v)
		if err != nil {
			// An unstorable value is a failed load: back off, as for a loader's error.
			c.release(ctx, k, token, key, err)
			c.failures.record(key, err, now.UnixNano(), c.rand(), false)
			return result[V]{err: err}
		}
		c.fill(ctx, key, k, token, fence, p, env, h, fresh, v, obs)
		return result[V]{value: v}
	case errors.Is(loadErr, ErrNotFound) && p.NegativeTTL > 0:
		h, fresh := c.header(now, p.NegativeTTL, took, envelope.FlagNegative)
		var zero V
		c.fill(ctx, key, k, token, fence, p, envelope.Append(nil, h), h, fresh, zero, obs)
		return result[V]{err: loadErr}
	}
	c.release(ctx, k, token, key, loadErr)
	if errors.Is(loadErr, ErrNotFound) {
		return result[V]{err: loadErr}
	}
	c.failures.record(key, loadErr, now.UnixNano(), c.rand(), false)
	return c.failed(loadErr, obs)
}

// fill writes a loaded envelope under the fence and keeps it in the L1 unless a newer write
// fenced it out.
func (c *Cache[V]) fill(ctx context.Context, key string, k scripts.Keys, token, fence string, p *Policy, env []byte, h envelope.Header, fresh time.Duration, v V, obs observation[V]) {
	// The fill writes generation fence+1 if nothing fenced it out.
	next, perr := strconv.ParseUint(fence, 10, 64)
	if c.l1 != nil && perr == nil {
		next++
		c.l1.expect(key, next)
	}
	rctx, cancel := c.redisContext(ctx)
	gen, ok, err := scripts.Fill(rctx, c.client, k, scripts.FillArgs{
		Token: token, Fence: fence, Envelope: env,
		TTL: p.hardTTL(fresh), GenTTL: c.genTTL, Channel: c.channel, Key: key,
	})
	cancel()
	if c.l1 != nil && perr == nil {
		written := next
		if err != nil {
			written = 0 // unknown: the fill may or may not have happened
		}
		defer c.l1.written(key, written)
	}
	switch {
	case err != nil:
		// The value is good, Redis is not: serve it from this instance (with generation 0, which
		// any message evicts) and let the lease expire.
		c.redisFailed("fill", key, err)
	case !ok:
		c.stats.Add(statFencedLoads)
		return
	default:
		h.Gen = gen
		if n := c.replicasOf(key, p); n > 0 {
			c.writeReplicas(ctx, key, n, env, gen, h, p)
		}
	}
	c.keep(key, v, h, h.WrittenAt, p, obs.epoch)
}

// release gives up the lease after a failed load and tells the waiters why; with a nil
// loadErr, only that the lease is free.
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
	v, took, err := c.callLoader(ctx, key, load)
	now := time.Now()
	switch {
	case err == nil:
		h, _ := c.header(now, p.TTL, took, 0)
		c.keep(key, v, h, h.WrittenAt, p, obs.epoch)
		return result[V]{value: v}
	case errors.Is(err, ErrNotFound):
		if p.NegativeTTL > 0 {
			h, _ := c.header(now, p.NegativeTTL, took, envelope.FlagNegative)
			var zero V
			c.keep(key, zero, h, h.WrittenAt, p, obs.epoch)
		}
		return result[V]{err: err}
	}
	c.failures.record(key, err, now.UnixNano(), c.rand(), false)
	return c.failed(err, obs)
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
