package stampede

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// Replication spreads the reads of a hot key over the nodes of a Redis Cluster: on a cluster a
// key lives on one node, and a key that every instance of a large fleet reads can saturate that
// node while the others idle.
//
// A replicated key keeps its primary, N:{K}, the authority for its lease and fence; each write of
// the primary (a fill or a Set) copies the envelope, generation included, to n replica keys
// N:{K#j}:replica, each with a hash tag of its own, placed so that they land on different
// masters of an evenly sharded cluster. Replicas live at most ReplicaTTL (jittered). A read of a
// replicated key reads one replica, chosen at random; on a replica miss it reads the primary,
// never the loader directly, and copies the primary to that replica.
//
// The bound: Delete, Invalidate, Set and Refresh remove or rewrite the replicas too, but best
// effort (a replica on a node that cannot be reached keeps its copy, and only an instance that
// replicates the key touches them), and a reader that read the primary just before a write may
// copy it to a replica just after (a copy never replaces a newer one). So a replica may serve a
// value for at most ReplicaTTL (plus the copy's Redis timeout) after the write that replaced
// it. An L1 keeps what it read from a replica no longer than the replica lives, and refuses a
// replica older than a write it heard of, so the bound holds through the L1s too. Policies that
// must be exact (inventory at checkout, balances) should not use replicas.

// maxReplicas bounds Policy.Replicas and HotKeys.Replicas.
const maxReplicas = 64

// replicasOf returns how many replicas serve key under p: the policy's, or while the key is hot
// and automatic replication is on, HotKeys.Replicas.
func (c *Cache[V]) replicasOf(key string, p *Policy) int {
	if p.Replicas > 0 {
		return p.Replicas
	}
	return c.hot.replicas(key)
}

// replicaKey returns a replica of key to read, chosen at random on each read. (Choosing one per
// instance would keep an instance on one node, but a fleet of a few instances would then load
// the nodes unevenly; go-redis pools connections per node anyway.)
func (c *Cache[V]) replicaKey(key string, n int) string {
	return scripts.ReplicaKeys(c.namespace, key, n)[rand.IntN(n)]
}

// readReplica reads key's replica. It returns the value if the replica may be served, and
// otherwise, after the primary was read (the caller's next step), writeBack copies it there.
func (c *Cache[V]) readReplica(ctx context.Context, key string, n int, p *Policy, load Loader[V], obs *observation[V]) (v V, err error, ok bool) {
	rk := c.replicaKey(key, n)
	raw, ttl, rerr := c.read(ctx, rk, key, true)
	if rerr == nil && raw != nil {
		// A replica older than what this instance's L1 knows of the key is a write behind.
		if e, decoded := c.decode(key, raw); decoded && (c.l1 == nil || e.h.Gen >= c.l1.floor(key)) {
			now := time.Now().UnixNano()
			switch verdict := c.judge(&e.h, now, p, c.hot.isPromoted(key)); verdict {
			case serve, serveAndRefresh:
				c.stats.Add(statReplicaHits)
				c.count(statL2Hits, key)
				// Kept no longer than the replica lives: the replica bound holds for the L1.
				c.keepAtMost(key, e.value, e.h, len(raw), p, obs.since, max(ttl, time.Millisecond))
				if verdict == serveAndRefresh {
					c.refreshInBackground(ctx, key, p, load, &e.h, now)
				}
				v, err = e.result()
				return v, err, true
			}
		}
	}
	c.stats.Add(statReplicaMisses)
	obs.replica = rk
	return v, nil, false
}

// copyToReplica writes an envelope read from the primary to the replica that missed, in the
// background: the caller has its value already.
func (c *Cache[V]) copyToReplica(rk string, raw []byte, h envelope.Header, p *Policy) {
	ttl := c.replicaLife(&h, p)
	if ttl <= 0 {
		return
	}
	c.life.goTracked(func() {
		ctx, cancel := c.redisContext(c.life.ctx)
		defer cancel()
		// Never over a newer copy: a write may have replaced the replica since the read.
		if err := scripts.CopyReplica(ctx, c.client, rk, raw, ttl); err != nil && ctx.Err() == nil {
			c.redisFailed("replica", rk, err)
		}
	})
}

// writeReplicas copies an envelope just written to the primary at gen to key's n replicas.
func (c *Cache[V]) writeReplicas(ctx context.Context, key string, n int, env []byte, gen uint64, h envelope.Header, p *Policy) {
	ttl := c.replicaLife(&h, p)
	if ttl <= 0 {
		return
	}
	binary.BigEndian.PutUint64(env[envelope.GenOffset:], gen)
	rctx, cancel := c.redisContext(ctx)
	defer cancel()
	_, err := c.client.Pipelined(rctx, func(pipe redis.Pipeliner) error {
		for _, rk := range scripts.ReplicaKeys(c.namespace, key, n) {
			scripts.CopyReplicaIn(rctx, pipe, rk, env, c.jittered(ttl))
		}
		return nil
	})
	if err != nil {
		c.redisFailed("replicas", key, err)
	}
}

// dropReplicas removes key's replicas after a Delete, Invalidate or Refresh.
func (c *Cache[V]) dropReplicas(ctx context.Context, key string, n int) {
	rctx, cancel := c.redisContext(ctx)
	defer cancel()
	_, err := c.client.Pipelined(rctx, func(pipe redis.Pipeliner) error {
		for _, rk := range scripts.ReplicaKeys(c.namespace, key, n) {
			pipe.Del(rctx, rk) // one command per key: replicas live in different slots
		}
		return nil
	})
	if err != nil {
		c.redisFailed("replicas", key, err)
	}
}

// replicaLife is how long a replica of an envelope may live: ReplicaTTL, and never past the
// envelope's own usefulness.
func (c *Cache[V]) replicaLife(h *envelope.Header, p *Policy) time.Duration {
	return min(c.replicaTTL, time.Duration(c.keepUntil(h, p)-time.Now().UnixNano()))
}
