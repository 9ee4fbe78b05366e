package stampede

import (
	"sync"
	"time"

	"github.com/stampede-cache/stampede/internal/scripts"
)

// orphanEvery is how often leases this instance may hold unknowingly are released.
const orphanEvery = 250 * time.Millisecond

// orphans are leases this instance may hold without knowing it. A lease script whose call
// failed (a timeout, a broken connection) may still run when Redis gets its bytes, later, and
// take the lease for a token whose owner has moved on: nobody would load under it, and waiters
// everywhere would wait it out. One goroutine releases such tokens, by compare-and-delete (so
// it never frees a lease someone else holds), every orphanEvery while the circuit is closed,
// and keeps each one for a lease TTL after Redis first answers, in case its bytes arrive late.
type orphans struct {
	mu      sync.Mutex
	leases  map[string]orphan // guarded by mu; by token
	running bool              // guarded by mu: the releasing goroutine runs
}

type orphan struct {
	keys     scripts.Keys
	key      string
	answered time.Time // when Redis first answered a release, zero before
}

// orphan adds the lease of token, which a failed call may have taken, to those to release.
func (c *Cache[V]) orphan(k scripts.Keys, token, key string) {
	o := &c.orphans
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.leases == nil {
		o.leases = make(map[string]orphan)
	}
	o.leases[token] = orphan{keys: k, key: key}
	if !o.running {
		o.running = c.life.goTracked(c.releaseOrphans)
	}
}

// releaseOrphans runs until no orphan is left, or Close.
func (c *Cache[V]) releaseOrphans() {
	t := time.NewTicker(orphanEvery)
	defer t.Stop()
	for {
		select {
		case <-c.life.ctx.Done():
			return
		case <-t.C:
		}
		if c.breaker.Open(time.Now().UnixNano()) {
			continue // Redis is failing: nothing would get through
		}
		c.orphans.mu.Lock()
		batch := make(map[string]orphan, len(c.orphans.leases))
		for token, o := range c.orphans.leases {
			batch[token] = o
		}
		c.orphans.mu.Unlock()
		for token, o := range batch {
			msg := scripts.Message{Kind: scripts.Released, Key: o.key}.Append(nil)
			ctx, cancel := c.redisContext(c.life.ctx)
			err := scripts.Release(ctx, c.client, o.keys, token, c.channel, msg)
			cancel()
			if err != nil {
				continue
			}
			if o.answered.IsZero() {
				o.answered = time.Now()
			}
			batch[token] = o
		}
		c.orphans.mu.Lock()
		for token, o := range batch {
			if !o.answered.IsZero() && time.Since(o.answered) >= c.leaseTTL {
				delete(c.orphans.leases, token)
			} else if _, ok := c.orphans.leases[token]; ok {
				c.orphans.leases[token] = o
			}
		}
		if len(c.orphans.leases) == 0 {
			c.orphans.running = false
			c.orphans.mu.Unlock()
			return
		}
		c.orphans.mu.Unlock()
	}
}
