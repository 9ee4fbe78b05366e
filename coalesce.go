package stampede

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede/internal/scripts"
)

const (
	// defaultEvictionWindow and maxEvictionWindow: see WithEvictionWindow.
	defaultEvictionWindow = 10 * time.Millisecond
	maxEvictionWindow     = time.Second
	// clusterStripes is how many eviction buffers (and channels) a namespace has on a cluster:
	// each master writes to the first it holds, so up to that many masters each have one.
	clusterStripes = 16
	// evictionSweepEvery is how often an instance flushes the buffers whose flusher seems lost.
	evictionSweepEvery = time.Second
)

// evictions coalesces the L1 evictions that this instance's writes send (see scripts.Route).
// A write appends its key's eviction to the buffer of its shard; the write that found the
// buffer empty flushes it when the window ends (wrote, flushLater), in one message to every
// instance. If that writer is lost before it flushes (a crash, a timeout on the reply), any
// instance's sweep flushes the buffer once it is older than a window and the Redis timeout.
type evictions struct {
	window  time.Duration
	channel string               // the namespace's: what plain routes name
	stripes []scripts.Stripe     // one on a single node, clusterStripes on a cluster
	cluster *redis.ClusterClient // nil but on a cluster
	plain   atomic.Bool          // Redis has no sharded pub/sub: flush with PUBLISH, SUBSCRIBE

	// byAddr maps a cluster master's address to its stripe: the first whose slot it holds.
	// Written by refresh, from the sweeper and New.
	byAddr atomic.Pointer[map[string]int]

	mu      sync.Mutex
	pending []bool // guarded by mu: this instance will flush stripe i when its window ends
}

func newEvictions(window time.Duration, namespace, channel string, client redis.UniversalClient) *evictions {
	if window <= 0 {
		return nil
	}
	e := &evictions{window: window, channel: channel}
	n := 1
	if cc, ok := client.(*redis.ClusterClient); ok {
		e.cluster, n = cc, clusterStripes
	}
	e.stripes = scripts.Stripes(namespace, n)
	e.pending = make([]bool, n)
	return e
}

// refresh learns which stripe each cluster master writes to, from the client's slot map.
func (e *evictions) refresh(ctx context.Context) {
	if e.cluster == nil {
		return
	}
	m := make(map[string]int, len(e.stripes))
	for i, s := range e.stripes {
		node, err := e.cluster.MasterForKey(ctx, s.Buffer)
		if err != nil {
			return
		}
		if addr := node.Options().Addr; addr != "" {
			if _, ok := m[addr]; !ok {
				m[addr] = i
			}
		}
	}
	e.byAddr.Store(&m)
}

// stripeOf returns the stripe whose buffer takes the evictions of the user key whose value is
// at valueKey, or -1 when they are published at once (no window, or a cluster master that
// holds no stripe or is not known yet).
func (e *evictions) stripeOf(ctx context.Context, valueKey string) int {
	if e == nil {
		return -1
	}
	if e.cluster == nil {
		return 0
	}
	m := e.byAddr.Load()
	if m == nil {
		return -1
	}
	node, err := e.cluster.MasterForKey(ctx, valueKey)
	if err != nil {
		return -1
	}
	if i, ok := (*m)[node.Options().Addr]; ok {
		return i
	}
	return -1
}

// inUse lists the stripes that writes append to, as far as this instance knows.
func (e *evictions) inUse() []int {
	if e.cluster == nil {
		return []int{0}
	}
	m := e.byAddr.Load()
	if m == nil {
		return nil
	}
	out := make([]int, 0, len(*m))
	for _, i := range *m {
		out = append(out, i)
	}
	return out
}

// route returns the channel argument of a write of key, and its stripe (-1: none).
func (c *Cache[V]) route(ctx context.Context, key, valueKey string) (string, int) {
	i := c.evictions.stripeOf(ctx, valueKey)
	if i < 0 {
		return c.channel, -1
	}
	return scripts.Route(c.channel, &c.evictions.stripes[i], key), i
}

// wroteMany notes the outcome of one script call that wrote to stripes (one per key): if it
// opened a window (see wrote), this instance flushes each stripe the call appended to.
func (c *Cache[V]) wroteMany(stripes []int, opened bool) {
	if !opened {
		return
	}
	last := -1
	for _, i := range stripes {
		if i != last {
			c.wrote(i, true)
			last = i
		}
	}
}

// wrote notes a write's outcome: if it opened its stripe's window (or may have: it failed, or
// was tried more than once, and a reply saying so may be lost), this instance flushes the
// stripe when the window ends. Flushing an empty buffer publishes nothing.
func (c *Cache[V]) wrote(stripe int, opened bool) {
	if stripe < 0 || !opened {
		return
	}
	e := c.evictions
	e.mu.Lock()
	if e.pending[stripe] {
		e.mu.Unlock()
		return
	}
	e.pending[stripe] = true
	e.mu.Unlock()
	c.flushAfter(stripe, e.window, 0)
}

// flushRetries is how many times a flush that failed is tried again, each after twice the
// previous wait (the window, then 2 and 4 windows), before the sweep is left to flush the buffer.
const flushRetries = 3

// flushAfter flushes stripe after wait, on a goroutine of the cache's (at once on Close). A flush
// that fails is tried again: while a failover ends, the writes of its window returned, and their
// evictions must not wait for the sweep.
func (c *Cache[V]) flushAfter(stripe int, wait time.Duration, retry int) {
	flush := func() {
		if err := c.flush(stripe, 0); err != nil && retry < flushRetries && c.life.ctx.Err() == nil {
			c.flushAfter(stripe, 2*wait, retry+1)
		}
	}
	started := c.life.goTracked(func() {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.life.ctx.Done(): // Close: flush now rather than leave it to another instance
			t.Stop()
		}
		flush()
	})
	if !started {
		flush()
	}
}

// flush publishes stripe's buffer (only if it is at least minAge old, when minAge > 0), and
// returns the error of the flush's script.
func (c *Cache[V]) flush(stripe int, minAge time.Duration) error {
	e := c.evictions
	if minAge == 0 {
		// Cleared before the flush takes the buffer: a write that finds it empty afterwards
		// opens a new window, and must be able to schedule its flush.
		e.mu.Lock()
		e.pending[stripe] = false
		e.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.life.ctx), c.redisTimeout)
	defer cancel()
	if minAge > 0 {
		// A sweep: most find no buffer, or a young one, and a PTTL is cheaper than a script.
		left, err := c.client.PTTL(ctx, e.stripes[stripe].Buffer).Result()
		if err != nil || left <= 0 || scripts.BufferTTL-left < minAge {
			return nil
		}
	}
	_, err := scripts.FlushEvictions(ctx, c.client, e.stripes[stripe], !e.plain.Load(), minAge)
	if err != nil {
		c.redisReport("flush evictions", "", err)
	}
	return err
}

// sweepEvictions flushes, every evictionSweepEvery until Close, the buffers older than a window and the
// Redis timeout: their flusher is lost. On a cluster it also follows which stripe each master
// writes to.
func (c *Cache[V]) sweepEvictions() {
	t := time.NewTicker(evictionSweepEvery)
	defer t.Stop()
	for first := true; ; first = false {
		if !first {
			select {
			case <-c.life.ctx.Done():
				return
			case <-t.C:
			}
		}
		c.refreshStripes()
		if first {
			continue
		}
		for _, i := range c.evictions.inUse() {
			c.flush(i, c.evictions.window+c.redisTimeout)
		}
	}
}

// refreshStripes learns, on a cluster, which stripe each master writes to (until then, writes
// publish their evictions at once), within the Redis timeout.
func (c *Cache[V]) refreshStripes() {
	if c.evictions.cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.life.ctx, c.redisTimeout)
	defer cancel()
	refresh := func() struct{} { c.evictions.refresh(ctx); return struct{}{} }
	if c.notify.ignoresDeadlines {
		bounded(ctx, refresh, func(error) struct{} { return struct{}{} })
	} else {
		refresh()
	}
}

// shardPubSub returns how a stripe's subscription opens its PubSub: on a cluster, on the
// master of the channel's slot, as the cluster client knows it now. go-redis would send a
// ReadOnly client's to a replica, and keep a PubSub on its node across reconnections: a replica
// outlives its master, and a subscription there would not notice that the master died before
// it flushed a window whose writes returned. A subscription to the master fails with it, and the
// L1 is cleared. Elsewhere (or for a client that ignores deadlines, whose slot lookup could
// block) it returns nil: the client's own Subscribe.
func (c *Cache[V]) shardPubSub(channel string, ignoresDeadlines bool) func(context.Context) *redis.PubSub {
	cc := c.evictions.cluster
	if cc == nil || ignoresDeadlines {
		return nil
	}
	return func(ctx context.Context) *redis.PubSub {
		if m, err := cc.MasterForKey(ctx, channel); err == nil {
			return m.Subscribe(ctx)
		}
		return c.client.Subscribe(ctx)
	}
}

// onEvictions applies a message of a stripe's channel: every key of the L1 whose hash it names
// is evicted, at the generation it names.
func (c *Cache[V]) onEvictions(payload string) {
	if c.l1 == nil {
		return
	}
	var buf [32]scripts.Eviction
	evs, err := scripts.ParseEvictions(buf[:0], payload)
	if err != nil {
		c.log.Warn("stampede: ignoring a malformed evictions message", "err", err)
		return
	}
	for _, ev := range evs {
		for _, key := range c.l1.evictHash(ev.Hash, ev.Gen) {
			c.refreshes.clear(key)
		}
	}
}

// subscribed reports whether every subscription is confirmed: the namespace's channel, and the
// channel of every stripe.
func (c *Cache[V]) subscribed() bool {
	if !c.notify.subscribed.Load() {
		return false
	}
	for _, n := range c.shards {
		if !n.subscribed.Load() {
			return false
		}
	}
	return true
}
