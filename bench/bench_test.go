package main

import (
	"context"
	"testing"
	"time"
)

// The hit scenarios as Go benchmarks, for benchstat:
//
//	STAMPEDE_REDIS_ADDR=127.0.0.1:6379 go test -run '^$' -bench . -count 10 | tee new.txt

// BenchmarkL2Hit is scenario c: a hit in Redis with the L1 off, against go-redis GET +
// json.Unmarshal and go-redis/cache without its local cache.
func BenchmarkL2Hit(b *testing.B) {
	benchFixture(b, func(ctx context.Context, e *env) (*fixture, error) {
		return newL2Fixture(ctx, e, e.prefix("l2"))
	})
}

// BenchmarkL1Hit is scenario d: a hit in the process, in parallel, against otter's
// GetIfPresent and go-redis/cache's local cache.
func BenchmarkL1Hit(b *testing.B) {
	benchFixture(b, func(ctx context.Context, e *env) (*fixture, error) {
		return newL1Fixture(ctx, e, e.prefix("l1"), 1000)
	})
}

// benchFixture runs each contender of the fixture newFixture prepares as a sub-benchmark.
func benchFixture(b *testing.B, newFixture func(context.Context, *env) (*fixture, error)) {
	ctx := context.Background()
	e, err := openEnv(ctx, &config{Redis: integrationEnvB(b), Query: 50 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer e.close()
	fx, err := newFixture(ctx, e)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range fx.contenders {
		b.Run(c.slug, c.fn)
	}
	fx.close()
	if err := fx.failed(); err != nil {
		b.Fatal(err)
	}
}

// integrationEnvB returns STAMPEDE_REDIS_ADDR, or skips the benchmark without it: the Redis
// benchmarks never run on an in-process imitation of Redis.
func integrationEnvB(b *testing.B) string {
	b.Helper()
	return integrationEnv(b, "STAMPEDE_REDIS_ADDR")
}
