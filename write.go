package stampede

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/stampede-cache/stampede/internal/scripts"
)

// Set writes v as the value of key (write-through), fresh for the policy's TTL. It fences out
// every load of key in flight, so none of them can overwrite v with what it read before, and
// evicts key from the L1 of every instance. Every Get that starts after Set returns gets v (or
// a later write) on this instance, and on the others once the write's message reached them.
func (c *Cache[V]) Set(ctx context.Context, key string, v V, opts ...GetOption) error {
	if err := c.check(key); err != nil {
		return err
	}
	p, err := c.policyFor(key, opts)
	if err != nil {
		return err
	}
	h, fresh := c.header(time.Now(), p.TTL, 0, 0)
	env, err := c.encode(h, v)
	if err != nil {
		return err
	}
	since := c.l1Now()
	k := scripts.KeysFor(c.namespace, key)
	route, stripe := c.route(ctx, key, k.Value)
	var w scripts.Written
	opened := false
	err = c.durably(ctx, func(ctx context.Context, ack scripts.Ack) (err error) {
		w, err = scripts.Set(ctx, c.client, ack, k, env, p.hardTTL(fresh), c.genTTL, route, key)
		opened = opened || w.Opened || err != nil
		return err
	})
	c.wrote(stripe, opened)
	if err != nil {
		return c.writeFailed("set", key, err)
	}
	gen := w.Gen
	h.Gen = gen
	c.failures.clear(key)
	c.keep(key, v, h, len(env), &p, since)
	if n := c.replicasOf(key, &p); n > 0 {
		c.writeReplicas(ctx, key, n, env, gen, h, &p)
	}
	return nil
}

// Invalidate marks the value of key stale without removing it (soft invalidation): readers go
// on getting it, at once, while one of them refreshes it in the background, so that
// invalidating a hot key does not send its readers to the source. It fences out every load of
// key in flight and evicts key from the L1 of every instance. A stale value is never served
// past the lifetime its policy gave it.
//
// Invalidate does not give read-your-writes: a Get right after it, on this instance too,
// returns the old value until the refresh lands. When the next read must see the change (a
// PUT followed by a GET), use Set or Refresh.
func (c *Cache[V]) Invalidate(ctx context.Context, key string) error {
	return c.evict(ctx, key, "invalidate", scripts.Invalidate)
}

// Delete removes the value of key (hard invalidation): the next reader loads it, one load for
// all readers. It fences out every load of key in flight, so none of them can write back what it
// read before the delete, and evicts key from the L1 of every instance.
func (c *Cache[V]) Delete(ctx context.Context, key string) error {
	return c.evict(ctx, key, "delete", scripts.Delete)
}

type evictScript func(ctx context.Context, c scripts.Writer, ack scripts.Ack, k scripts.Keys, genTTL time.Duration, channel, key string) (scripts.Written, error)

func (c *Cache[V]) evict(ctx context.Context, key, op string, script evictScript) error {
	if err := c.check(key); err != nil {
		return err
	}
	k := scripts.KeysFor(c.namespace, key)
	route, stripe := c.route(ctx, key, k.Value)
	var w scripts.Written
	opened := false
	err := c.durably(ctx, func(ctx context.Context, ack scripts.Ack) (err error) {
		w, err = script(ctx, c.client, ack, k, c.genTTL, route, key)
		opened = opened || w.Opened || err != nil
		return err
	})
	c.wrote(stripe, opened)
	if err != nil {
		return c.writeFailed(op, key, err)
	}
	if c.l1 != nil {
		c.l1.evict(key, w.Gen)
	}
	if p, err := c.policyFor(key, nil); err == nil {
		if n := c.replicasOf(key, &p); n > 0 {
			c.dropReplicas(ctx, key, n)
		}
	}
	return nil
}

// Refresh loads key now and overwrites its value, for a write path that changed the source:
// unlike Delete, the key is never empty meanwhile (readers get the old value, marked stale).
// It takes the key's lease from whoever holds it and fences out every load in flight, so the
// result is what load returns now. If load fails, the old value stays, stale.
//
// Refresh returns what load returned. The load runs under ctx and the cache's load timeout.
// Refresh's durable step is its first: once it returns, the old value is marked stale and
// every load in flight fenced out, on every replica WithWriteReplicas asks for. Writing the
// new value is then best effort: if Redis does not take it (a failover, a slot that stays
// open while it moves), Refresh still returns it, the failure goes to Stats and Hooks, this
// instance keeps it in its L1, and the other instances refresh the stale value on their next
// read.
// Options change the policy of this write, as for Set.
func (c *Cache[V]) Refresh(ctx context.Context, key string, load Loader[V], opts ...GetOption) (V, error) {
	var zero V
	if err := c.check(key); err != nil {
		return zero, err
	}
	if load == nil {
		return zero, ErrNilLoader
	}
	p, err := c.policyFor(key, opts)
	if err != nil {
		return zero, err
	}
	k := scripts.KeysFor(c.namespace, key)
	token := c.newToken()
	route, stripe := c.route(ctx, key, k.Value)
	var w scripts.Written
	opened := false
	err = c.durably(ctx, func(ctx context.Context, ack scripts.Ack) (err error) {
		w, err = scripts.BeginRefresh(ctx, c.client, ack, k, token, c.leaseTTL, c.genTTL, route, key)
		opened = opened || w.Opened || err != nil
		return err
	})
	c.wrote(stripe, opened)
	if err != nil {
		return zero, c.writeFailed("refresh", key, err)
	}
	fence := strconv.FormatUint(w.Gen, 10)
	if c.l1 != nil {
		c.l1.evict(key, w.Gen)
	}
	if n := c.replicasOf(key, &p); n > 0 {
		c.dropReplicas(ctx, key, n) // readers go to the primary, which is marked stale
	}
	obs := observation[V]{since: c.l1Now(), refresh: true}
	stop := c.keepLease(key, k, token)
	// The load follows the caller's ctx: if it ends the load, the lease is released without
	// blaming the source, and the old value stays, stale.
	l := c.runLoad(ctx, key, &p, load, true)
	stop()
	r := c.settle(ctx, key, k, token, fence, &p, l, obs)
	return r.value, r.err
}

// durably runs a write under the Redis timeout, acknowledged by the primary's replicas (see
// WithWriteReplicas), and runs it again while they do not confirm it in time: a failover may be
// under way, and the next attempt may reach the new primary. Writing again is safe: a write
// only advances the key's generation.
func (c *Cache[V]) durably(ctx context.Context, write func(context.Context, scripts.Ack) error) error {
	rctx, cancel := c.redisContext(ctx)
	defer cancel()
	for {
		err := write(rctx, c.ack())
		if !errors.Is(err, scripts.ErrUnconfirmed) || rctx.Err() != nil {
			return err
		}
	}
}

// ack is what a write asks of the replicas: WithWriteReplicas of them, or as many as the
// primary has, within half the Redis timeout.
func (c *Cache[V]) ack() scripts.Ack {
	n := min(c.writeAcks, int(c.topo.replicas.Load()))
	if n <= 0 {
		return scripts.Ack{}
	}
	return scripts.Ack{Replicas: n, Timeout: c.redisTimeout / 2}
}

// writeFailed reports a failed write. The write may have happened anyway (a timeout after
// Redis applied it), so the key also leaves this instance's L1.
func (c *Cache[V]) writeFailed(op, key string, err error) error {
	c.redisFailed(op, key, err)
	if c.l1 != nil {
		c.l1.evict(key, 0)
	}
	return fmt.Errorf("stampede: %s %q: %w", op, key, err)
}
