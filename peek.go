package stampede

import (
	"context"
	"time"

	"github.com/stampede-cache/stampede/internal/scripts"
)

// Peek returns the value of key that Get would serve without loading: from the L1, else from
// Redis, fresh or stale within its stale-while-revalidate window. It never calls a loader and
// never starts a refresh. found is false when there is no such value, or when the key is
// cached as not found. The error is a Redis failure (or ctx's); Peek does not fall back to
// anything. It is not counted as a Get in Stats.
func (c *Cache[V]) Peek(ctx context.Context, key string) (v V, found bool, err error) {
	var zero V
	if err := c.check(key); err != nil {
		return zero, false, err
	}
	p := &c.policy
	if c.policyFunc != nil {
		q, err := c.policyFor(key, nil)
		if err != nil {
			return zero, false, err
		}
		p = &q
	}
	if c.useL1(key, p) {
		if e, now, ok := c.l1.get(key); ok {
			if verdict := c.judge(&e.h, now, p, e.promoted); verdict == serve || verdict == serveAndRefresh {
				return c.peeked(ctx, key, e, now)
			}
		}
	}
	since := c.l1Now()
	raw, _, err := c.read(ctx, scripts.ValueKey(c.namespace, key), key, false)
	if err != nil || raw == nil {
		return zero, false, err
	}
	e, ok := c.decode(key, raw)
	if !ok {
		return zero, false, nil
	}
	now := time.Now().UnixNano()
	if verdict := c.judge(&e.h, now, p, c.hot.isPromoted(key)); verdict != serve && verdict != serveAndRefresh {
		return zero, false, nil
	}
	c.keep(key, e.value, e.h, len(raw), p, since)
	return c.peeked(ctx, key, &e, now)
}

// peeked returns what Peek returns of an entry it may serve, counting a stale one.
func (c *Cache[V]) peeked(ctx context.Context, key string, e *l1Entry[V], now int64) (V, bool, error) {
	if !e.h.Fresh(now) {
		c.servedStaleCtx(ctx, key, e.h.FreshUntil, now)
	}
	if e.h.Negative() {
		var zero V
		return zero, false, nil
	}
	return e.value, true, nil
}
