package stampede

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede/internal/scripts"
)

// InvalidateAll marks every value of the namespace stale at once, fleet-wide, as Invalidate
// does one key: readers go on getting the old values while one background refresh per key
// replaces each, so that invalidating everything does not send every reader to the source. A
// load that began before the call does not write what it read afterwards.
//
// It costs one small write, whatever the number of keys: Redis keeps the date of the call, the
// instances learn it by message (and read it when they start or subscribe again, as messages
// are lost while no subscription is up), and a read compares a value's date with it at no
// extra cost. Values are dated by the clock of the
// instance that loaded them and the call by Redis's: clocks that disagree by more than a few
// milliseconds make the values written around the call refreshed once more, or, for the few
// written within the disagreement before it, not at all.
func (c *Cache[V]) InvalidateAll(ctx context.Context) error {
	if c.life.closed.Load() {
		return ErrClosed
	}
	var at int64
	err := c.durably(ctx, func(ctx context.Context, ack scripts.Ack) (err error) {
		at, err = scripts.InvalidateAll(ctx, c.client, ack, c.namespace, c.channel)
		return err
	})
	if err != nil {
		c.redisFailed("invalidate all", "", err)
		return fmt.Errorf("stampede: invalidate all: %w", err)
	}
	c.topo.staleFrom(allStaleBefore(at))
	return nil
}

// readInvalidateAll reads the date of the namespace's last InvalidateAll, for an instance that
// may have missed its message: when it subscribes. A failure is reported to Stats and Hooks,
// not to the read path's circuit breaker; the next subscription reads again.
func (c *Cache[V]) readInvalidateAll(ctx context.Context) {
	rctx, cancel := c.redisContext(ctx)
	s, err := c.client.Get(rctx, scripts.AllKey(c.namespace)).Result()
	cancel()
	if err != nil {
		if !errors.Is(err, redis.Nil) && ctx.Err() == nil {
			c.stats.Add(statRedisErrors)
			c.hooks.redisError("get", scripts.AllKey(c.namespace), err)
		}
		return
	}
	if at, err := strconv.ParseInt(s, 10, 64); err == nil {
		c.topo.staleFrom(allStaleBefore(at))
	}
}

// allStaleBefore is the date (Unix nanoseconds) before which values are stale after an
// InvalidateAll at at (Unix milliseconds): the end of its millisecond, since a value's date
// has only milliseconds, so that a value written in that millisecond before the call is stale
// too. (One written in it after the call is refreshed once more.)
func allStaleBefore(at int64) int64 {
	return time.UnixMilli(at + 1).UnixNano()
}
