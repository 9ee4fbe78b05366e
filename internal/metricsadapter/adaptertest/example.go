package adaptertest

import (
	"context"
	"log"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
)

// ExampleRedis starts a Redis in process for the adapters' examples, and returns a client of
// it and a function that closes both.
func ExampleRedis() (rdb *redis.Client, closeAll func()) {
	mr, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	rdb = redis.NewClient(&redis.Options{Addr: mr.Addr(), ContextTimeoutEnabled: true})
	return rdb, func() {
		_ = rdb.Close()
		mr.Close()
	}
}

// ExampleGets is the traffic of the adapters' examples: two Gets of one key, a miss that loads
// and then a hit.
func ExampleGets(cache *stampede.Cache[string]) {
	load := func(ctx context.Context, key string) (string, error) { return "Ann", nil }
	for range 2 {
		if _, err := cache.Get(context.Background(), "user:1", load); err != nil {
			log.Fatal(err)
		}
	}
}
