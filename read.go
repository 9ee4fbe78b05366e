package stampede

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// readL2 reads key from Redis for Get, after the L1: one GET, of a replica first for a
// replicated key. It returns what Get returns and true when it served the value (or ctx ended),
// and otherwise records in obs what the flight needs to know.
func (c *Cache[V]) readL2(ctx context.Context, key string, p *Policy, load Loader[V], obs *observation[V]) (V, error, bool) {
	obs.since = c.l1Now()
	if n := c.replicasOf(key, p); n > 0 {
		if v, err, ok := c.readReplica(ctx, key, n, p, load, obs); ok {
			return v, err, true
		}
	}
	var zero V
	var began time.Time // for the GET's span, which only a GET that serves nothing gets
	if c.tracer != nil {
		began = time.Now()
	}
	raw, _, err := c.read(ctx, scripts.ValueKey(c.namespace, key), key, false)
	switch {
	case err != nil:
		if ctx.Err() != nil {
			c.tracer.instant(ctx, Span{Op: SpanRedisGet, Key: key, Start: began}, err)
			return zero, ctx.Err(), true
		}
		obs.redisDown = true
	case raw != nil:
		obs.seen = seenGen(raw)
		e, ok := c.decode(key, raw)
		if !ok {
			obs.foreign = c.version != "" && c.foreign(key, raw, p)
		}
		if ok {
			now := time.Now().UnixNano()
			switch v := c.judge(&e.h, now, p, c.hot.isPromoted(key)); v {
			case serve, serveAndRefresh:
				c.count(statL2Hits, key)
				c.keep(key, e.value, e.h, len(raw), p, obs.since)
				if v == serveAndRefresh {
					c.refreshInBackground(ctx, key, p, load, &e.h, now)
				}
				if obs.replica != "" && v == serve {
					c.copyToReplica(obs.replica, raw, e.h, p) // a fresh value only
				}
				v, err := e.result()
				return v, err, true
			case fallback:
				obs.stale = escape(e)
			}
		}
	}
	c.tracer.instant(ctx, Span{Op: SpanRedisGet, Key: key, Start: began}, err)
	return zero, nil, false
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
		c.redisAnswered()
	case ctx.Err() != nil:
		c.breaker.Abandon() // the caller gave up: no news of Redis
	default:
		c.redisFailed("get", key, err)
	}
	return readResult{raw: raw, ttl: ttl, err: err}
}
