package stampede

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// refreshes tracks the background refreshes of a Cache: at most one per key, at most limit in
// all. A refresh due while its key is refreshing, or while all slots are busy, is skipped; the
// next read of the key triggers it again.
type refreshes struct {
	slots *semaphore.Weighted

	mu      sync.Mutex
	running map[string]struct{} // guarded by mu
}

func newRefreshes(limit int) refreshes {
	return refreshes{slots: semaphore.NewWeighted(int64(limit)), running: make(map[string]struct{})}
}

func (r *refreshes) begin(key string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.running[key]; ok || !r.slots.TryAcquire(1) {
		return false
	}
	r.running[key] = struct{}{}
	return true
}

func (r *refreshes) end(key string) {
	r.mu.Lock()
	delete(r.running, key)
	r.mu.Unlock()
	r.slots.Release(1)
}

// refreshInBackground is called when a caller is served an entry that is stale or due for early
// refresh. It starts one background refresh of the key in this instance; the refresh takes the
// key's lease if nobody holds it and never waits for it, so that across instances one refresh
// runs. The caller returns the entry at once.
//
// The refresh runs detached from the caller's cancellation (context.WithoutCancel keeps the
// caller's values), under the cache's load timeout, and ends at Close.
func (c *Cache[V]) refreshInBackground(ctx context.Context, key string, p *Policy, load Loader[V], h *envelope.Header, now int64) {
	if !h.Fresh(now) {
		c.stats.Add(statStaleServed)
		c.hooks.staleServed(key, time.Duration(now-h.FreshUntil))
	}
	if _, failing := c.failures.active(key, now); failing || !c.refreshes.begin(key) {
		return
	}
	pol := *p
	seen := binary.BigEndian.AppendUint64(nil, h.Gen)
	started := c.life.goTracked(func() {
		defer c.refreshes.end(key)
		rctx, cancel := c.life.detach(ctx)
		defer cancel()
		c.refresh(rctx, key, &pol, load, seen)
	})
	if !started {
		c.refreshes.end(key)
	}
}

// refresh is one background refresh: load and fill if the key's lease is free and its value is
// still the one the caller saw.
func (c *Cache[V]) refresh(ctx context.Context, key string, p *Policy, load Loader[V], seen []byte) {
	k := scripts.KeysFor(c.namespace, key)
	token := c.newToken()
	obs := observation[V]{seen: seen, epoch: c.epoch(key)}
	lr, err := c.lease(ctx, k, token, seen, p.Strategy == Singleflight)
	if err != nil {
		if ctx.Err() == nil {
			c.redisFailed("lease", key, err)
		}
		return
	}
	switch lr.State {
	case scripts.Changed:
		// Someone wrote a newer value; its message evicts stale L1 copies, and this one is fresh.
		c.adopt(ctx, key, []byte(lr.Value), p, load, &obs)
	case scripts.Acquired:
		c.stats.Add(statEarlyRefreshes)
		c.hooks.earlyRefresh(key)
		c.lead(ctx, key, k, token, lr.Fence, p, load, obs)
	case scripts.Held:
		// Another instance is loading it; its fill will evict the stale copies.
	}
}
