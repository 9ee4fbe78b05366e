package stampede

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// redisClient lists the go-redis methods the cache calls. Client and ClusterClient (and the
// failover clients, which are of these types) have them.
type redisClient interface {
	Get(ctx context.Context, key string) *redis.StringCmd
	MGet(ctx context.Context, keys ...string) *redis.SliceCmd // GetMany's (batch.go)
	Set(ctx context.Context, key string, value any, expiration time.Duration) *redis.StatusCmd
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
	Subscribe(ctx context.Context, channels ...string) *redis.PubSub
	Info(ctx context.Context, sections ...string) *redis.StringCmd
	PTTL(ctx context.Context, key string) *redis.DurationCmd
	scripts.Scripter
}

const (
	// breakerThreshold Redis calls failing in a row open the circuit: for breakerCooldown, reads
	// skip Redis and go to the loader (still once per key per instance), so that callers do not
	// each wait for a Redis timeout; then one read tries Redis again.
	breakerThreshold = 5
	breakerCooldown  = 250 * time.Millisecond
)

// errCircuitOpen stands for a Redis call the read path skipped because Redis keeps failing.
var errCircuitOpen = errors.New("stampede: Redis is failing; skipped while the circuit is open")

// redisContext returns the context of one Redis call: ctx, with the cache's Redis timeout
// unless ctx ends sooner anyway. (A request's context usually has a deadline, and then the
// call needs no timer of its own, which saves an L2 hit five of its allocations.)
func (c *Cache[V]) redisContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= c.redisTimeout {
		return ctx, noCancel
	}
	return context.WithTimeout(ctx, c.redisTimeout)
}

func noCancel() {}

// redisFailed reports a failed Redis call to Stats, Hooks and the circuit breaker.
func (c *Cache[V]) redisFailed(op, key string, err error) {
	c.redisReport(op, key, err)
	if c.breaker.Failure(time.Now().UnixNano()) {
		c.log.Warn("stampede: Redis keeps failing; reads skip it and use the loader for a while",
			"cooldown", breakerCooldown, "err", err)
		// Waiters look again now, find the circuit open and load, rather than wait for a
		// notification that a failing Redis may never send.
		c.notify.wake(scripts.Message{Kind: scripts.Released}, true)
	}
}

// redisAnswered notes that Redis answered, so that its next failure is logged again.
func (c *Cache[V]) redisAnswered() {
	if c.redisLost.Load() && c.redisLost.CompareAndSwap(true, false) {
		c.loud.Info("stampede: Redis answers again")
	}
}

// redisReport reports a failed Redis call to Stats and Hooks, and logs the first failure after
// Redis answered; unlike redisFailed, it leaves the read path's circuit breaker alone: for
// the topology watcher's INFO, which may fail for reasons of its own (a missing ACL
// permission) while reads work. (The subscription's failures do feed the breaker: they often
// mean a failover, during which reads must keep off a replica that may lag.)
func (c *Cache[V]) redisReport(op, key string, err error) {
	c.stats.Add(statRedisErrors)
	c.hooks.redisError(op, key, err)
	if c.redisLost.CompareAndSwap(false, true) {
		c.loud.Warn("stampede: Redis failed; the cache answers through the loader until it is back "+
			"(logged once until Redis answers again)", "op", op, "err", err)
	}
}
