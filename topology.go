package stampede

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// topologyEvery is how often the cache looks at the primaries it writes to.
const topologyEvery = time.Second

// topology is what the cache knows of the Redis primaries it writes to: how many replicas they
// have, so that writes wait for them (WithWriteReplicas), and which servers they are, so that a
// failover or a restart is noticed.
//
// Replication is asynchronous: a primary that fails over or restarts from a snapshot may come
// back without the last writes. So when a primary changes (a new run ID), the L1 is dropped, as
// it may hold values newer than Redis's, or miss the messages of writes made meanwhile. When it
// restarted (a run ID whose server has been up for less than it has been unseen), every value
// written before the restart is treated as stale: served while one refresh per key replaces it
// (as Invalidate does), never again as fresh.
type topology struct {
	// replicas is the fewest replicas that a primary has had connected since it became the
	// primary the cache writes to: a primary that loses its replicas (cut off, or demoted in
	// a failover it does not know of yet) must not take writes that no replica acknowledges.
	replicas    atomic.Int32
	staleBefore atomic.Int64 // Unix nanoseconds: values written before are stale (0: none)

	servers map[string]server // by run ID of the primaries last seen; the watcher's own
	seen    time.Time         // when they were last seen
}

type server struct {
	runID    string
	uptime   time.Duration
	replicas int
}

// primaries lists the primaries the cache writes to: one for a client of a single node or of
// Sentinel, every master of a cluster.
func (c *Cache[V]) primaries(ctx context.Context) ([]server, error) {
	if cc, ok := c.cluster(); ok {
		var mu sync.Mutex
		var servers []server
		err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
			s, err := infoOf(ctx, m)
			mu.Lock()
			servers = append(servers, s)
			mu.Unlock()
			return err
		})
		return servers, err
	}
	s, err := infoOf(ctx, c.client)
	if err != nil {
		return nil, err
	}
	return []server{s}, nil
}

type infoer interface {
	Info(ctx context.Context, sections ...string) *redis.StringCmd
}

func infoOf(ctx context.Context, c infoer) (server, error) {
	text, err := c.Info(ctx, "server", "replication").Result()
	if err != nil {
		return server{}, err
	}
	var s server
	for line := range strings.Lines(text) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch name {
		case "run_id":
			s.runID = value
		case "uptime_in_seconds":
			n, _ := strconv.Atoi(value)
			s.uptime = time.Duration(n) * time.Second
		case "connected_slaves":
			s.replicas, _ = strconv.Atoi(value)
		}
	}
	return s, nil
}

// cluster returns the cache's client as a cluster client, if it is one.
func (c *Cache[V]) cluster() (*redis.ClusterClient, bool) {
	cc, ok := c.origin.(*redis.ClusterClient)
	return cc, ok
}

// watchTopology looks at the primaries every topologyEvery until Close.
func (c *Cache[V]) watchTopology() {
	t := time.NewTicker(topologyEvery)
	defer t.Stop()
	for {
		c.lookAtTopology()
		select {
		case <-c.life.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lookAtTopology reads the primaries once and acts on what changed since the last look.
func (c *Cache[V]) lookAtTopology() {
	ctx, cancel := c.redisContext(c.life.ctx)
	type reply struct {
		servers []server
		err     error
	}
	look := func() reply {
		servers, err := c.primaries(ctx)
		return reply{servers, err}
	}
	var r reply
	if c.notify.ignoresDeadlines {
		r = bounded(ctx, look, func(err error) reply { return reply{nil, err} })
	} else {
		r = look()
	}
	cancel()
	servers, err := r.servers, r.err
	if err != nil && c.life.ctx.Err() != nil {
		return // Close cancelled the call: no failure of Redis
	}
	if err != nil {
		// Reported, not fed to the read path's breaker: INFO may be refused (an ACL without it)
		// while reads work. Failover and restart detection, and waiting for replicas, are off
		// until it answers. A server that answers with another error does not support the
		// sections (an in-process Redis for tests): it has no topology to watch.
		var reply redis.Error
		if !errors.As(err, &reply) || strings.HasPrefix(err.Error(), "NOPERM") {
			c.redisReport("info", "", err)
		}
		return
	}
	now := time.Now()
	t := &c.topo
	fewest := -1
	changed, restarted := false, int64(0)
	current := make(map[string]server, len(servers))
	for _, s := range servers {
		if old, ok := t.servers[s.runID]; ok {
			s.replicas = max(s.replicas, old.replicas)
		}
		current[s.runID] = s
		if fewest < 0 || s.replicas < fewest {
			fewest = s.replicas
		}
		if t.servers == nil {
			continue // the first look: nothing to compare with
		}
		if _, ok := t.servers[s.runID]; !ok {
			changed = true
			if s.uptime <= now.Sub(t.seen)+topologyEvery {
				// It started since the last look: a restart, maybe from an old snapshot. Its
				// uptime is the difference of two clock readings in whole seconds, so it
				// started before now-uptime+1s: every value written before the restart was
				// written before then. (Values written in that second after it are refreshed
				// once more.)
				at := now.Add(-s.uptime + time.Second).UnixNano()
				if lost := c.notify.lostAt.Load(); lost > now.Add(-s.uptime-2*time.Second).UnixNano() && lost < at {
					// The subscription broke when the old server went: nothing was written
					// between then and the restart, and values written since are new.
					at = lost
				}
				restarted = max(restarted, at)
			}
		}
	}
	t.replicas.Store(int32(max(fewest, 0)))
	t.servers, t.seen = current, now
	if !changed {
		return
	}
	if restarted != 0 {
		t.staleFrom(restarted)
		c.log.Warn("stampede: a Redis primary restarted; values written before it are stale and are refreshed once each",
			"stale_before", time.Unix(0, restarted))
	} else {
		c.log.Warn("stampede: a Redis primary changed (failover); dropping the L1")
	}
	if c.l1 != nil {
		c.l1.clear()
	}
	c.notify.move() // resubscribing clears the L1 again, once messages flow from the new primary
	for _, n := range c.shards {
		n.move()
	}
}

// staleFrom makes every value written before at (Unix nanoseconds) stale: after a restart, or
// InvalidateAll.
func (t *topology) staleFrom(at int64) {
	for {
		old := t.staleBefore.Load()
		if at <= old || t.staleBefore.CompareAndSwap(old, at) {
			return
		}
	}
}
