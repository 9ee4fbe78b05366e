package stampede

import (
	"context"
	"errors"
	"fmt"
	"time"

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
func (c *Cache[V]) acquire(ctx context.Context, key string, p *Policy, load Loader[V], obs observation[V]) (r result[V]) {
	k := scripts.KeysFor(c.namespace, key)
	token := c.newToken()
	var waitStart time.Time
	defer func() {
		if !waitStart.IsZero() {
			c.hooks.leaseWait(key, time.Since(waitStart))
		}
	}()
	var wait spanEnd // the lease_wait span, while this caller waits for another instance's load
	wctx := ctx      // ctx, or the wait span's while it lasts: the looks at Redis nest in it
	defer func() { wait.done(r.err) }()
	giveUp := time.Now().Add(c.loadTimeout + 2*c.leaseTTL)
	for {
		var w *waiter
		if p.Strategy == Lease {
			// Watch before asking, so that a notification sent in between is not missed.
			w = c.notify.watch(key)
		}
		since := c.l1Now()
		lr, err := c.lease(wctx, key, k, token, obs.seen, p.Strategy == Singleflight)
		if err != nil || lr.State != scripts.Held {
			wait.done(nil) // no longer waiting: the lease is free, or the value changed
			wait, wctx = spanEnd{}, ctx
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
			if obs.foreign {
				return c.loadAlone(ctx, key, p, load, obs) // another version's: leave it
			}
			// It changed into something nobody may serve: ask again with what it is now.
		case lr.State == scripts.Acquired:
			return c.lead(ctx, key, k, token, lr.Fence, p, load, obs)
		default: // Held
			if waitStart.IsZero() {
				waitStart = time.Now()
				c.stats.Add(statLeaseWaits)
			}
			if !wait.open() {
				wctx, wait = c.tracer.start(ctx, Span{Op: SpanLeaseWait, Key: key})
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
				if obs.foreign {
					return c.loadAlone(ctx, key, p, load, obs) // another version's: leave it
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
	sctx, span := c.tracer.start(ctx, Span{Op: SpanRedisLease, Key: key})
	rctx, cancel := c.redisContext(sctx)
	defer cancel()
	if seen == nil {
		seen = []byte{}
	}
	r, err := scripts.Lease(rctx, c.client, k, scripts.LeaseArgs{
		Token: token, LeaseTTL: c.leaseTTL, GenTTL: c.genTTL, Seen: seen, NoLock: noLock,
	})
	span.done(err)
	switch {
	case err == nil:
		c.breaker.Success()
		c.redisAnswered()
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
		obs.foreign = c.version != "" && c.foreign(key, raw, p)
		return result[V]{}, false
	}
	now := time.Now().UnixNano()
	switch v := c.judge(&e.h, now, p, c.hot.isPromoted(key)); v {
	case serve, serveAndRefresh:
		c.keep(key, e.value, e.h, len(raw), p, since)
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

// keepLease extends the lease every third of its TTL until stop is called, so that a load
// slower than the lease TTL does not let a second one start. The load's own deadline (the load
// timeout) ends it: a loader that ignores its ctx cannot hold the lease for longer.
func (c *Cache[V]) keepLease(key string, k scripts.Keys, token string) (stop func()) {
	return c.whileLoading(func() bool {
		rctx, cancel := c.redisContext(c.life.ctx)
		held, err := scripts.Extend(rctx, c.client, k, token, c.leaseTTL)
		cancel()
		if err != nil {
			c.redisFailed("extend", key, err)
			return true
		}
		// Not held: a Refresh took the lease, or it expired; the fence still guards the write.
		return held
	})
}

// whileLoading calls extend every third of the lease TTL, on a goroutine of the cache's, until
// stop is called, Close, or extend returns false.
func (c *Cache[V]) whileLoading(extend func() bool) (stop func()) {
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
			if !extend() {
				return
			}
		}
	})
	return func() { close(done) }
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
