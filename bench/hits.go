package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	gocache "github.com/go-redis/cache/v9"
	"github.com/maypok86/otter/v2"
	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede"
)

// A contender is one benchmark of the l1 or l2 scenario.
type contender struct {
	name string // in the tables
	slug string // in the names of the Go benchmarks
	fn   func(b *testing.B)
}

// fixture holds what the benchmarks of a scenario read, and the first error one of them met:
// testing.Benchmark, outside of go test, drops what a failed benchmark logs.
type fixture struct {
	contenders []contender
	closers    []func()

	mu  sync.Mutex
	err error // guarded by mu
}

// fail records err and stops the benchmark.
func (f *fixture) fail(b *testing.B, err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
	b.Fatal(err)
}

func (f *fixture) failed() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fixture) close() {
	for _, c := range slices.Backward(f.closers) {
		c()
	}
}

// noLoad is the loader of the hit benchmarks, which must never load.
func noLoad(context.Context, string) (profile, error) {
	return profile{}, errors.New("bench: a hit benchmark called its loader")
}

// newL2Fixture prepares scenario c: a hit in Redis with the L1 off. Each contender has its own
// client and reads one ~100-byte value of its own under prefix.
func newL2Fixture(ctx context.Context, e *env, prefix string) (*fixture, error) {
	fx := &fixture{}
	client := func() *redis.Client {
		c := e.client()
		fx.closers = append(fx.closers, func() { _ = c.Close() })
		return c
	}
	p := profileOf(hotKey)
	payload, _ := json.Marshal(p)

	rawClient, rawKey := client(), prefix+":raw:"+hotKey
	if err := rawClient.Set(ctx, rawKey, payload, time.Hour).Err(); err != nil {
		fx.close()
		return nil, err
	}
	fx.contenders = append(fx.contenders, contender{"raw go-redis GET + json.Unmarshal", "raw", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			raw, err := rawClient.Get(ctx, rawKey).Bytes()
			if err != nil {
				fx.fail(b, err)
			}
			var v profile
			if err := json.Unmarshal(raw, &v); err != nil {
				fx.fail(b, err)
			}
		}
	}})

	sc, err := stampede.New[profile](client(), stampede.WithNamespace(prefix+":stampede"), stampede.WithTTL(time.Hour), stampede.WithoutL1())
	if err != nil {
		fx.close()
		return nil, err
	}
	fx.closers = append(fx.closers, func() { _ = sc.Close() })
	if err := sc.Set(ctx, hotKey, p); err != nil {
		fx.close()
		return nil, err
	}
	fx.contenders = append(fx.contenders, contender{"stampede Get, L1 off", "stampede", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			if _, err := sc.Get(ctx, hotKey, noLoad); err != nil {
				fx.fail(b, err)
			}
		}
	}})

	gc, gcKey := newGoRedisCache(client(), false, prefix+":go-redis-cache", time.Hour, noLoad), prefix+":go-redis-cache:"+hotKey
	if err := gc.cache.Set(&gocache.Item{Ctx: ctx, Key: gcKey, Value: p, TTL: time.Hour}); err != nil {
		fx.close()
		return nil, err
	}
	fx.contenders = append(fx.contenders, contender{"go-redis/cache Get, no local cache", "go-redis-cache", func(b *testing.B) {
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			var v profile
			if err := gc.cache.Get(ctx, gcKey, &v); err != nil {
				fx.fail(b, err)
			}
		}
	}})
	return fx, nil
}

// newL1Fixture prepares scenario d: a hit in the process, read by parallel goroutines that
// cycle through the same n keys in each contender.
func newL1Fixture(ctx context.Context, e *env, prefix string, n int) (*fixture, error) {
	fx := &fixture{}
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "user:" + strconv.Itoa(i)
	}
	// parallel calls read with the indexes of keys, from a random place in each goroutine.
	parallel := func(read func(i int) error) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(len(keys))
				for pb.Next() {
					if err := read(i); err != nil {
						fx.fail(b, err)
					}
					if i++; i == len(keys) {
						i = 0
					}
				}
			})
		}
	}

	o := otter.Must(&otter.Options[string, profile]{MaximumSize: 10_000})
	fx.closers = append(fx.closers, func() { o.StopAllGoroutines() })
	for _, k := range keys {
		o.Set(k, profileOf(k))
	}
	fx.contenders = append(fx.contenders, contender{"otter v2 GetIfPresent", "otter", parallel(func(i int) error {
		if _, ok := o.GetIfPresent(keys[i]); !ok {
			return fmt.Errorf("otter: %s missing", keys[i])
		}
		return nil
	})})

	// otter with a lifetime per entry, as stampede's L1 uses it: each lookup reads the clock.
	oe := otter.Must(&otter.Options[string, profile]{
		MaximumSize:      10_000,
		ExpiryCalculator: otter.ExpiryWriting[string, profile](time.Hour),
	})
	fx.closers = append(fx.closers, func() { oe.StopAllGoroutines() })
	for _, k := range keys {
		oe.Set(k, profileOf(k))
	}
	fx.contenders = append(fx.contenders, contender{"otter v2 GetIfPresent, entries with expiry", "otter-expiry", parallel(func(i int) error {
		if _, ok := oe.GetIfPresent(keys[i]); !ok {
			return fmt.Errorf("otter: %s missing", keys[i])
		}
		return nil
	})})

	rc := e.client()
	fx.closers = append(fx.closers, func() { _ = rc.Close() })
	// A long L1 TTL and TTL, so that no entry expires while the benchmarks run; both only
	// bound how long an entry lives, not what a hit costs.
	sc, err := stampede.New[profile](rc, stampede.WithNamespace(prefix+":stampede"), stampede.WithTTL(time.Hour),
		stampede.WithL1(10_000, time.Hour))
	if err != nil {
		fx.close()
		return nil, err
	}
	fx.closers = append(fx.closers, func() { _ = sc.Close() })
	for _, k := range keys {
		if err := sc.Set(ctx, k, profileOf(k)); err != nil { // Set keeps the value in the L1
			fx.close()
			return nil, err
		}
	}
	// Set keeps a value in the L1 only if its own invalidation message does not come back
	// first; a read of each key puts the others there.
	for _, k := range keys {
		if _, err := sc.Get(ctx, k, noLoad); err != nil {
			fx.close()
			return nil, err
		}
	}
	warm := sc.Stats()
	fx.contenders = append(fx.contenders, contender{"stampede Get, L1 hit (hot-key detection on)", "stampede", parallel(func(i int) error {
		_, err := sc.Get(context.Background(), keys[i], noLoad)
		return err
	})})
	// Every read must have been an L1 hit: a read of Redis would make the figure a lie.
	fx.closers = append(fx.closers, func() {
		s := sc.Stats()
		if n := s.L2Hits + s.Misses - warm.L2Hits - warm.Misses; n > 0 {
			fx.mu.Lock()
			fx.err = errors.Join(fx.err, fmt.Errorf("stampede L1 benchmark: %d reads went to Redis", n))
			fx.mu.Unlock()
		}
	})

	gcClient := e.client()
	fx.closers = append(fx.closers, func() { _ = gcClient.Close() })
	gc := newGoRedisCache(gcClient, true, prefix+":go-redis-cache", time.Hour, noLoad)
	for _, k := range keys {
		if err := gc.cache.Set(&gocache.Item{Ctx: ctx, Key: gc.ns + ":" + k, Value: profileOf(k), TTL: time.Hour}); err != nil {
			fx.close()
			return nil, err
		}
	}
	gcKeys := make([]string, n)
	for i, k := range keys {
		gcKeys[i] = gc.ns + ":" + k
	}
	fx.contenders = append(fx.contenders, contender{"go-redis/cache Get, TinyLFU local hit", "go-redis-cache", parallel(func(i int) error {
		var v profile
		return gc.cache.Get(context.Background(), gcKeys[i], &v)
	})})
	return fx, nil
}

// benchResult is the median of the rounds of one benchmark.
type benchResult struct {
	name      string
	nsPerOp   float64
	allocs    int64
	bytes     int64
	opsPerSec float64 // of the whole process, for parallel benchmarks
}

// runBenchmarks runs each contender count times, the contenders taking turns, with
// testing.Benchmark and the given -test.benchtime, and returns the median of each.
func runBenchmarks(fx *fixture, benchtime string, count int) ([]benchResult, error) {
	restore, err := setBenchtime(benchtime)
	if err != nil {
		return nil, err
	}
	defer restore()
	runs := make([][]testing.BenchmarkResult, len(fx.contenders))
	for range count {
		for i, c := range fx.contenders {
			r := testing.Benchmark(c.fn)
			if err := fx.failed(); err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			if r.N == 0 {
				return nil, fmt.Errorf("%s: the benchmark failed", c.name)
			}
			runs[i] = append(runs[i], r)
		}
	}
	out := make([]benchResult, len(fx.contenders))
	for i, rs := range runs {
		slices.SortFunc(rs, func(a, b testing.BenchmarkResult) int {
			return int(a.T.Nanoseconds()/int64(a.N) - b.T.Nanoseconds()/int64(b.N))
		})
		m := rs[len(rs)/2]
		nsop := float64(m.T.Nanoseconds()) / float64(m.N)
		out[i] = benchResult{name: fx.contenders[i].name, nsPerOp: nsop, allocs: m.AllocsPerOp(), bytes: m.AllocedBytesPerOp(), opsPerSec: 1e9 / nsop}
	}
	return out, nil
}

// setBenchtime sets testing's -test.benchtime, which testing.Benchmark follows, and returns
// how to put back the previous value.
func setBenchtime(v string) (restore func(), err error) {
	f := flag.Lookup("test.benchtime")
	if f == nil {
		testing.Init()
		f = flag.Lookup("test.benchtime")
	}
	old := f.Value.String()
	if err := f.Value.Set(v); err != nil {
		return nil, fmt.Errorf("-benchtime %q: %w", v, err)
	}
	return func() { _ = f.Value.Set(old) }, nil
}

// runL2 is scenario c.
func runL2(ctx context.Context, cfg *config, e *env, out io.Writer, logf func(string, ...any)) error {
	fx, err := newL2Fixture(ctx, e, e.prefix("l2"))
	if err != nil {
		return err
	}
	res, err := runBenchmarks(fx, cfg.Benchtime, cfg.Count)
	fx.close()
	if err == nil {
		err = fx.failed()
	}
	if err != nil {
		return err
	}
	payload, _ := json.Marshal(profileOf(hotKey))
	fmt.Fprintf(out, "## c. L2 hit: one read of Redis, the L1 off\n\n")
	fmt.Fprintf(out, "One goroutine, one key, a %d-byte JSON value (go-redis/cache stores it as msgpack, "+
		"s2-compressed), each contender with its own client; testing.Benchmark with -benchtime %s, "+
		"median of %d interleaved rounds.\n\n", len(payload), cfg.Benchtime, cfg.Count)
	hitTable(out, res)
	for _, r := range res {
		logf("  %-45s %s/op %d allocs/op", r.name, ns(r.nsPerOp), r.allocs)
	}
	return nil
}

// runL1 is scenario d.
func runL1(ctx context.Context, cfg *config, e *env, out io.Writer, logf func(string, ...any)) error {
	fx, err := newL1Fixture(ctx, e, e.prefix("l1"), cfg.L1Keys)
	if err != nil {
		return err
	}
	res, err := runBenchmarks(fx, cfg.Benchtime, cfg.Count)
	fx.close()
	if err == nil {
		err = fx.failed()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "## d. L1 hit: a read in the process, in parallel\n\n")
	fmt.Fprintf(out, "b.RunParallel (GOMAXPROCS goroutines), each cycling from a random place through the same %s keys, "+
		"present in every contender; testing.Benchmark with -benchtime %s, median of %d interleaved rounds. "+
		"go-redis/cache keeps encoded bytes and decodes them on every hit.\n\n", thousands(int64(cfg.L1Keys)), cfg.Benchtime, cfg.Count)
	hitTable(out, res)
	for _, r := range res {
		logf("  %-45s %s/op %d allocs/op", r.name, ns(r.nsPerOp), r.allocs)
	}
	return nil
}

// hitTable prints benchmark results, each against the first: ratio is ns/op over the first's.
func hitTable(out io.Writer, res []benchResult) {
	t := newTable("contender", "ns/op", "ratio", "allocs/op", "B/op", "ops/s")
	for _, r := range res {
		t.add(r.name, ns(r.nsPerOp), ratio(r.nsPerOp, res[0].nsPerOp), r.allocs, r.bytes, thousands(int64(r.opsPerSec)))
	}
	t.write(out)
}
