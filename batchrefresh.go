package stampede

import (
	"context"
	"encoding/binary"
	"reflect"
	"sync"
	"time"

	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// The background refreshes of keys read through GetMany are merged, as sturdyc merges them:
// a refresh due waits in a buffer (one per BatchLoader function) for at most the window of
// WithRefreshBatch, and the buffered keys are then leased together (never waiting for a lease
// another instance holds), reloaded with one call of the BatchLoader per chunk, and filled
// together. Each key's lease stays fleet-wide, so one instance refreshes it.

// refreshBuffer holds the refreshes waiting for their window to end.
type refreshBuffer[V any] struct {
	mu   sync.Mutex
	open map[uintptr]*pendingRefresh[V] // guarded by mu: the buffer of each BatchLoader function
}

// pendingRefresh is one buffer: the keys due, and the BatchLoader to reload them with.
type pendingRefresh[V any] struct {
	ctx  context.Context // the first caller's, without its cancellation: its values
	load BatchLoader[V]
	keys []refreshKey // guarded by refreshBuffer.mu while the buffer is open
	full chan struct{}
}

type refreshKey struct {
	key  string
	p    Policy
	seen []byte // the generation the reader saw: refreshed only if it is still the value's
}

// refreshManyInBackground is refreshInBackground for a key that GetMany served stale or due for
// early refresh: the refresh waits in its BatchLoader's buffer. The caller returns at once.
func (c *Cache[V]) refreshManyInBackground(ctx context.Context, key string, p *Policy, load BatchLoader[V], h *envelope.Header, now int64) {
	if c.batch.refreshWindow <= 0 {
		c.refreshInBackground(ctx, key, p, one(load), h, now)
		return
	}
	if !h.Fresh(now) {
		c.servedStaleCtx(ctx, key, h.FreshUntil, now)
	}
	if _, failing := c.failures.active(key, now); failing || !c.refreshes.mark(key, now) {
		return
	}
	rk := refreshKey{key: key, p: *p, seen: binary.BigEndian.AppendUint64(nil, h.Gen)}
	fn := reflect.ValueOf(load).Pointer()
	b := &c.refreshBuf
	b.mu.Lock()
	defer b.mu.Unlock()
	pr := b.open[fn]
	if pr == nil {
		pr = &pendingRefresh[V]{ctx: context.WithoutCancel(ctx), load: load, full: make(chan struct{})}
		if !c.life.goTracked(func() { c.flushRefreshes(fn, pr) }) {
			c.refreshes.unmark(key, 0)
			return
		}
		if b.open == nil {
			b.open = make(map[uintptr]*pendingRefresh[V])
		}
		b.open[fn] = pr
	}
	pr.keys = append(pr.keys, rk)
	if len(pr.keys) >= c.batch.refreshMax {
		delete(b.open, fn) // closed: the next refresh due opens another buffer
		close(pr.full)
	}
}

// flushRefreshes waits until pr's window ends (or it is full, or Close), and refreshes its keys
// with one slot of WithRefreshWorkers; when none is free, the refreshes are skipped, and the
// next reads of the keys make them due again.
func (c *Cache[V]) flushRefreshes(fn uintptr, pr *pendingRefresh[V]) {
	t := time.NewTimer(c.batch.refreshWindow)
	defer t.Stop()
	select {
	case <-pr.full:
	case <-t.C:
	case <-c.life.ctx.Done():
	}
	b := &c.refreshBuf
	b.mu.Lock()
	if b.open[fn] == pr {
		delete(b.open, fn)
	}
	keys := pr.keys
	b.mu.Unlock()
	heldUntil := make([]int64, len(keys))
	if c.life.ctx.Err() == nil && c.refreshes.slots.TryAcquire(1) {
		ctx, cancel := c.life.detach(pr.ctx)
		c.refreshMany(ctx, keys, pr.load, heldUntil)
		cancel()
		c.refreshes.slots.Release(1)
	}
	for i, k := range keys {
		c.refreshes.unmark(k.key, heldUntil[i])
	}
}

// refreshMany is refresh for many keys: it leases them together and reloads those whose lease
// is free and whose value is still the one their reader saw. For a key whose lease another
// instance holds, it writes when that lease expires to heldUntil.
func (c *Cache[V]) refreshMany(ctx context.Context, keys []refreshKey, load BatchLoader[V], heldUntil []int64) {
	since := c.l1Now()
	its := make([]*item[V], len(keys))
	leases := make([]leaseOf, len(keys))
	idx := make([]int, len(keys))
	for i := range keys {
		k := &keys[i]
		its[i] = &item[V]{key: k.key, p: &k.p, obs: &observation[V]{seen: k.seen, since: since}}
		leases[i] = leaseOf{k: scripts.KeysFor(c.namespace, k.key), token: c.newToken()}
		idx[i] = i
	}
	lrs, errs := c.leaseMany(ctx, its, idx, leases)
	var won []int
	now := time.Now()
	for i, lr := range lrs {
		switch {
		case errs[i] != nil:
		case lr.State == scripts.Changed:
			// Someone wrote a newer value; its message evicts stale L1 copies.
			c.adoptMany(ctx, its[i], []byte(lr.Value), since, load)
		case lr.State == scripts.Acquired:
			c.stats.Add(statEarlyRefreshes)
			c.hooks.earlyRefresh(its[i].key)
			leases[i].fence = lr.Fence
			won = append(won, i)
		default: // Held: its holder's fill will evict the stale copies
			heldUntil[i] = now.Add(lr.Remaining).UnixNano()
		}
	}
	if len(won) > 0 {
		c.leadMany(ctx, its, won, leases, make([]result[V], len(its)), load)
	}
}

// refreshSiblings refreshes a batch read together as one. It draws XFetch once, for the key of
// the call whose fresh value expires first, as if it were the window later (its refresh may wait
// so long in the buffer); when that key is due, or any key was (stale), the keys of the call whose
// values expire within the TTL's jitter (plus the window) after it are refreshed with it, in the
// same merged call. Otherwise the jitter, drawn anew at each write, would spread the keys'
// refreshes over several windows, each a call of its own.
func (c *Cache[V]) refreshSiblings(ctx context.Context, items []item[V], load BatchLoader[V]) {
	if c.batch.refreshWindow <= 0 {
		return
	}
	now := time.Now().UnixNano()
	var first *item[V] // the fresh value that expires first
	var due int64      // the latest expiry of a key due
	for i := range items {
		it := &items[i]
		switch {
		case it.due:
			due = max(due, it.fresh)
		case it.fresh > now && (first == nil || it.fresh < first.fresh):
			first = it
		}
	}
	if first != nil && first.p.EarlyRefresh > 0 && c.topo.staleBefore.Load() == 0 {
		h := envelope.Header{FreshUntil: first.fresh, LoadTime: first.took}
		if refreshEarly(&h, now+int64(c.batch.refreshWindow), first.p.EarlyRefresh, c.rand) {
			due = max(due, first.fresh)
		}
	}
	if due == 0 {
		return
	}
	for i := range items {
		it := &items[i]
		if it.due || it.fresh <= now || it.p.EarlyRefresh <= 0 {
			continue
		}
		if it.fresh < due+int64(c.jitter*float64(it.p.TTL))+int64(c.batch.refreshWindow) {
			h := envelope.Header{Gen: it.gen, FreshUntil: it.fresh}
			c.refreshManyInBackground(ctx, it.key, it.p, load, &h, now)
		}
	}
}
