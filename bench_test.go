package stampede_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// profile is the payload of the benchmarks: about 100 bytes of JSON.
type profile struct {
	ID        int64  `json:"id"`
	Name      string `json:"name"`
	Email     string `json:"email"`
	Followers int64  `json:"followers"`
}

var benchProfile = profile{ID: 42, Name: "Celeb", Email: "celeb@example.com", Followers: 12_000_000}

func loadProfile(context.Context, string) (profile, error) { return benchProfile, nil }

// benchRedis returns a client of the real Redis, or skips: miniredis is not Redis, and its
// figures would mislead.
func benchRedis(b *testing.B) *redis.Client {
	b.Helper()
	addr := os.Getenv("STAMPEDE_REDIS_ADDR")
	if addr == "" {
		b.Skip("STAMPEDE_REDIS_ADDR is not set; Redis benchmarks skipped")
	}
	c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
	b.Cleanup(func() { _ = c.Close() })
	return c
}

func benchCache(b *testing.B, client redis.UniversalClient, opts ...stampede.Option) *stampede.Cache[profile] {
	b.Helper()
	opts = append([]stampede.Option{stampede.WithNamespace(redistest.Namespace(b)), stampede.WithTTL(1 << 40)}, opts...)
	c, err := stampede.New[profile](client, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Close() })
	return c
}

// BenchmarkL1Hit is Get of a fresh key in the L1.
func BenchmarkL1Hit(b *testing.B) { benchL1Hit(b) }

// benchL1Hit measures Gets of one key that the L1 holds, on a cache built with opts: the
// BenchmarkL1Hit variants differ only in their options.
func benchL1Hit(b *testing.B, opts ...stampede.Option) {
	c := benchCache(b, redistest.Client(b, redistest.Mini(b)), opts...)
	ctx := context.Background()
	for range 2 { // the second Get finds the value in Redis and keeps it in the L1
		if _, err := c.Get(ctx, "user:42", loadProfile); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get(ctx, "user:42", loadProfile); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOtterHit is the reference for BenchmarkL1Hit: otter's own lookup of the same entry.
func BenchmarkOtterHit(b *testing.B) {
	o := otter.Must(&otter.Options[string, profile]{MaximumSize: 10_000})
	o.Set("user:42", benchProfile)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, ok := o.GetIfPresent("user:42"); !ok {
				b.Fatal("miss")
			}
		}
	})
}

// BenchmarkL2Hit is Get of a fresh key with the L1 off: one GET of the real Redis.
func BenchmarkL2Hit(b *testing.B) {
	client := benchRedis(b)
	c := benchCache(b, client, stampede.WithoutL1())
	ctx := context.Background()
	if _, err := c.Get(ctx, "user:42", loadProfile); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx, "user:42", loadProfile); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawGet is the reference for BenchmarkL2Hit: go-redis GET and json.Unmarshal of the
// same payload.
func BenchmarkRawGet(b *testing.B) {
	client := benchRedis(b)
	ctx := context.Background()
	key := redistest.Namespace(b) + ":raw"
	payload, _ := json.Marshal(benchProfile)
	if err := client.Set(ctx, key, payload, 0).Err(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { client.Del(ctx, key) })
	b.ReportAllocs()
	for b.Loop() {
		raw, err := client.Get(ctx, key).Bytes()
		if err != nil {
			b.Fatal(err)
		}
		var p profile
		if err := json.Unmarshal(raw, &p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMissAndLoad is Get of a key that is nowhere: GET, lease, load, fill.
func BenchmarkMissAndLoad(b *testing.B) {
	client := benchRedis(b)
	c := benchCache(b, client, stampede.WithoutL1())
	ctx := context.Background()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if _, err := c.Get(ctx, fmt.Sprint("user:", i), loadProfile); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkL1HitNoHotKeys is BenchmarkL1Hit with hot-key detection off: the difference is the
// detector's cost on the hit path.
func BenchmarkL1HitNoHotKeys(b *testing.B) { benchL1Hit(b, stampede.WithoutHotKeys()) }

// BenchmarkL2HitDeadline is BenchmarkL2Hit with a request deadline shorter than the cache's
// Redis timeout, as a service's request context usually has: the call needs no timer of its own.
func BenchmarkL2HitDeadline(b *testing.B) {
	client := benchRedis(b)
	c := benchCache(b, client, stampede.WithoutL1(), stampede.WithRedisTimeout(time.Second))
	ctx := requestContext{context.Background()}
	if _, err := c.Get(ctx, "user:42", loadProfile); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx, "user:42", loadProfile); err != nil {
			b.Fatal(err)
		}
	}
}

// requestContext stands for the context of a request being served: its deadline is always half
// a second away. (A service makes one per request; the benchmark measures what the cache adds.)
type requestContext struct{ context.Context }

func (requestContext) Deadline() (time.Time, bool) {
	return time.Now().Add(500 * time.Millisecond), true
}
