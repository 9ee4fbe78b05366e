package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RunID returns a random id of a run, to name what the run writes to services that other runs
// share, so that it finds and deletes its own.
func RunID() string {
	var id [4]byte
	_, _ = rand.Read(id[:])
	return hex.EncodeToString(id[:])
}

// RedisOptions returns a function that returns the options of a new client of the Redis at
// addr, a host:port or a redis:// URL. Each call returns a copy, as go-redis fills in the
// defaults of the options it is given, with ContextTimeoutEnabled set: stampede's
// documentation asks for it, so that the cache's Redis timeout bounds reads and writes.
func RedisOptions(addr string) (func() *redis.Options, error) {
	base := &redis.Options{Addr: addr}
	if strings.Contains(addr, "://") {
		var err error
		if base, err = redis.ParseURL(addr); err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
	}
	return func() *redis.Options {
		o := *base
		o.ContextTimeoutEnabled = true
		return &o
	}, nil
}

// DeleteKeys deletes the keys of c that match pattern, found by SCAN and deleted by UNLINK 500
// at a time, so that a run leaves nothing in a shared Redis.
func DeleteKeys(ctx context.Context, c *redis.Client, pattern string) error {
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := c.Unlink(ctx, batch...).Err()
		batch = batch[:0]
		return err
	}
	for iter.Next(ctx) {
		if batch = append(batch, iter.Val()); len(batch) == 500 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	return flush()
}
