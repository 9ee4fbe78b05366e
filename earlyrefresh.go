package stampede

import (
	"context"
	"encoding/binary"
	"math"
	"sync"
	"time"

	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/scripts"
	"golang.org/x/sync/semaphore"
)

// xfetchHorizon is where XFetch's chance becomes negligible: it refreshes when an Exp(1) draw,
// -ln(U), reaches (freshUntil-now)/(loadTime*beta), and P(Exp(1) >= 40) = e^-40.
const xfetchHorizon = 40

// refreshEarly is XFetch (Vattani, Chierichetti and Lowenstein, "Optimal Probabilistic Cache
// Stampede Prevention", VLDB 2015): refresh when now - loadTime*beta*ln(U) >= freshUntil, U
// uniform in (0,1]. The chance grows as expiry nears, faster for values that took longer to
// load. Far from expiry it returns without drawing a random number.
func refreshEarly(h *envelope.Header, now int64, beta float64, rand func() float64) bool {
	delta := float64(max(h.LoadTime, time.Millisecond)) * beta
	left := float64(h.FreshUntil - now)
	if left >= delta*xfetchHorizon {
		return false
	}
	u := 1 - rand() // (0, 1]
	return -math.Log(u)*delta >= left
}

// refreshes tracks the background refreshes of a Cache: at most one per key, at most limit in
// all. A refresh due while its key is refreshing here or elsewhere, or while all slots are
// busy, is skipped; the next read of the key triggers it again.
type refreshes struct {
	slots *semaphore.Weighted

	mu sync.Mutex
	// busy maps a key to 0 while this instance refreshes it, or to when the lease that another
	// instance holds for it expires (Unix nanoseconds), until a message about the key comes.
	// Entries of leases that expired are swept every sweepEvery.
	busy      map[string]int64 // guarded by mu
	nextSweep int64            // guarded by mu
}

// sweepEvery is how often refreshes forgets the expired leases of other instances that no
// message ended (their holder died).
const sweepEvery = int64(10 * time.Second)

func newRefreshes(limit int) refreshes {
	return refreshes{slots: semaphore.NewWeighted(int64(limit)), busy: make(map[string]int64)}
}

func (r *refreshes) begin(key string, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now >= r.nextSweep {
		r.nextSweep = now + sweepEvery
		for k, until := range r.busy {
			if until != 0 && now >= until {
				delete(r.busy, k)
			}
		}
	}
	if r.busyAt(key, now) || !r.slots.TryAcquire(1) {
		return false
	}
	r.busy[key] = 0
	return true
}

// busyAt reports whether key is being refreshed, here or (until its lease expires) elsewhere.
// r.mu must be held.
func (r *refreshes) busyAt(key string, now int64) bool {
	until, ok := r.busy[key]
	return ok && (until == 0 || now < until)
}

// end ends this instance's refresh of key; heldUntil, if not 0, is when the lease another
// instance holds for the key expires, and no refresh of the key starts before (or before a
// message about the key).
func (r *refreshes) end(key string, heldUntil int64) {
	r.unmark(key, heldUntil)
	r.slots.Release(1)
}

// mark is begin without a slot of the semaphore: the key is being refreshed here (a merged
// refresh takes one slot for all its keys, when it runs).
func (r *refreshes) mark(key string, now int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.busyAt(key, now) {
		return false
	}
	r.busy[key] = 0
	return true
}

// unmark is end for a key that mark marked.
func (r *refreshes) unmark(key string, heldUntil int64) {
	r.mu.Lock()
	if heldUntil == 0 {
		delete(r.busy, key)
	} else {
		r.busy[key] = heldUntil
	}
	r.mu.Unlock()
}

// clear forgets that another instance refreshes key: a message about it came.
func (r *refreshes) clear(key string) {
	r.mu.Lock()
	if until, ok := r.busy[key]; ok && until != 0 {
		delete(r.busy, key)
	}
	r.mu.Unlock()
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
		c.servedStaleCtx(ctx, key, h.FreshUntil, now)
	}
	if _, failing := c.failures.active(key, now); failing || !c.refreshes.begin(key, now) {
		return
	}
	pol := *p
	seen := binary.BigEndian.AppendUint64(nil, h.Gen)
	started := c.life.goTracked(func() {
		var heldUntil int64
		defer func() { c.refreshes.end(key, heldUntil) }()
		rctx, cancel := c.life.detach(ctx)
		defer cancel()
		heldUntil = c.refresh(rctx, key, &pol, load, seen)
	})
	if !started {
		c.refreshes.end(key, 0)
	}
}

// refresh is one background refresh: load and fill if the key's lease is free and its value is
// still the one the caller saw. If another instance holds the lease, it returns when that lease
// expires (Unix nanoseconds), else 0.
func (c *Cache[V]) refresh(ctx context.Context, key string, p *Policy, load Loader[V], seen []byte) (heldUntil int64) {
	k := scripts.KeysFor(c.namespace, key)
	token := c.newToken()
	obs := observation[V]{seen: seen, since: c.l1Now()}
	lr, err := c.lease(ctx, key, k, token, seen, p.Strategy == Singleflight)
	if err != nil {
		if ctx.Err() == nil && err != errCircuitOpen {
			c.redisFailed("lease", key, err)
		}
		return 0
	}
	switch lr.State {
	case scripts.Changed:
		// Someone wrote a newer value; its message evicts stale L1 copies, and this one is fresh.
		c.adopt(ctx, key, []byte(lr.Value), obs.since, p, load, &obs)
	case scripts.Acquired:
		c.stats.Add(statEarlyRefreshes)
		c.hooks.earlyRefresh(key)
		c.lead(ctx, key, k, token, lr.Fence, p, load, obs)
	case scripts.Held:
		// Another instance is loading it; its fill will evict the stale copies. Until then (or
		// until its lease expires), reads of the key here do not ask again.
		return time.Now().Add(lr.Remaining).UnixNano()
	}
	return 0
}
