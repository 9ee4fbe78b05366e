package stampede

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// SetMany is Set of each key of values, in one script call per slot (all keys at once on a
// single node; per slot on a cluster, the slots' calls run concurrently), each acknowledged by
// the replicas as WithWriteReplicas asks. Each key is fenced, evicted from every L1 and
// readable on this instance once SetMany returns, exactly as after Set. Options change the
// policy of every key's write, as for Set.
//
// An invalid key, or a value the codec cannot encode, fails only its key; the error is a
// *BatchError listing the keys that failed (a failed write may still have happened, as for
// Set). With no keys, SetMany does nothing.
func (c *Cache[V]) SetMany(ctx context.Context, values map[string]V, opts ...GetOption) error {
	if c.life.closed.Load() {
		return ErrClosed
	}
	errs := make(map[string]error)
	type set struct {
		v V
		h envelope.Header
		p Policy
	}
	sets := make([]set, 0, len(values))
	ws := make([]scripts.Write, 0, len(values))
	for key, v := range values {
		if err := c.check(key); err != nil {
			errs[key] = err
			continue
		}
		p, err := c.policyFor(key, opts)
		if err != nil {
			errs[key] = err
			continue
		}
		h, fresh := c.header(time.Now(), p.TTL, 0, 0)
		env, err := c.encode(h, v)
		if err != nil {
			errs[key] = err
			continue
		}
		sets = append(sets, set{v: v, h: h, p: p})
		ws = append(ws, scripts.Write{Keys: scripts.KeysFor(c.namespace, key), Key: key, Env: env, TTL: p.hardTTL(fresh)})
	}
	since := c.l1Now()
	gens, werrs := c.writeMany(ctx, scripts.OpSet, "set", ws)
	for i, w := range ws {
		if werrs[i] != nil {
			errs[w.Key] = werrs[i]
			continue
		}
		s := &sets[i]
		s.h.Gen = gens[i]
		c.failures.clear(w.Key)
		c.keep(w.Key, s.v, s.h, len(w.Env), &s.p, since)
		if n := c.replicasOf(w.Key, &s.p); n > 0 {
			c.writeReplicas(ctx, w.Key, n, w.Env, gens[i], s.h, &s.p)
		}
	}
	return batchErr(errs)
}

// DeleteMany is Delete of each of keys, in one script call per slot, as SetMany writes: every
// key's value is removed, its loads in flight fenced out, and it is evicted from every L1. An
// invalid key fails only itself; the error is a *BatchError listing the keys that failed.
func (c *Cache[V]) DeleteMany(ctx context.Context, keys []string) error {
	return c.evictMany(ctx, keys, scripts.OpDelete, "delete")
}

// InvalidateMany is Invalidate of each of keys (soft invalidation: the values are served while
// one reader per key refreshes them), in one script call per slot, as SetMany writes. An invalid
// key fails only itself; the error is a *BatchError listing the keys that failed.
func (c *Cache[V]) InvalidateMany(ctx context.Context, keys []string) error {
	return c.evictMany(ctx, keys, scripts.OpInvalidate, "invalidate")
}

func (c *Cache[V]) evictMany(ctx context.Context, keys []string, op scripts.WriteOp, name string) error {
	if c.life.closed.Load() {
		return ErrClosed
	}
	errs := make(map[string]error)
	ws := make([]scripts.Write, 0, len(keys))
	seen := make(map[string]struct{}, len(keys))
	for _, key := range keys {
		if _, dup := seen[key]; dup {
			continue
		}
		seen[key] = struct{}{}
		if err := c.check(key); err != nil {
			errs[key] = err
			continue
		}
		ws = append(ws, scripts.Write{Keys: scripts.KeysFor(c.namespace, key), Key: key})
	}
	gens, werrs := c.writeMany(ctx, op, name, ws)
	for i, w := range ws {
		if werrs[i] != nil {
			errs[w.Key] = werrs[i]
			continue
		}
		if c.l1 != nil {
			c.l1.evict(w.Key, gens[i])
		}
		if p, err := c.policyFor(w.Key, nil); err == nil {
			if n := c.replicasOf(w.Key, &p); n > 0 {
				c.dropReplicas(ctx, w.Key, n)
			}
		}
	}
	return batchErr(errs)
}

// writeMany makes op's write of each of ws: one script call per slot, the calls of a cluster's
// slots concurrently, each durably (acknowledged by the replicas, and made again while they do
// not confirm it). It returns each key's generation, or its error (reported as writeFailed
// does).
func (c *Cache[V]) writeMany(ctx context.Context, op scripts.WriteOp, name string, ws []scripts.Write) ([]uint64, []error) {
	gens := make([]uint64, len(ws))
	errs := make([]error, len(ws))
	if len(ws) == 0 {
		return gens, errs
	}
	_, cluster := c.cluster()
	groups := scripts.GroupBySlot(len(ws), func(i int) string { return ws[i].Keys.Value }, cluster)
	write := func(idx []int) {
		group := make([]scripts.Write, len(idx))
		for j, i := range idx {
			group[j] = ws[i]
		}
		stripes := make([]int, len(idx))
		for j := range group {
			group[j].Route, stripes[j] = c.route(ctx, group[j].Key, group[j].Keys.Value)
		}
		var got []scripts.Written
		opened := false
		err := c.durably(ctx, func(ctx context.Context, ack scripts.Ack) (err error) {
			got, err = scripts.WriteBatch(ctx, c.client, ack, op, group, c.genTTL)
			// A failed call, or one made again, may have opened a window whose reply was lost.
			opened = opened || err != nil || slices.ContainsFunc(got, func(w scripts.Written) bool { return w.Opened })
			return err
		})
		c.wroteMany(stripes, opened)
		for j, i := range idx {
			if err != nil {
				errs[i] = c.writeFailed(name, ws[i].Key, err)
			} else {
				gens[i] = got[j].Gen
			}
		}
	}
	if len(groups) == 1 {
		write(groups[0])
		return gens, errs
	}
	var wg sync.WaitGroup
	for _, idx := range groups {
		wg.Go(func() { write(idx) })
	}
	wg.Wait()
	return gens, errs
}
