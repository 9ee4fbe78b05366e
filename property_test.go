package stampede_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// The consistency property: once a Set or a Delete of a key has returned, no Get of that key
// that starts afterwards, on any instance, returns a value older than the one the write put in
// the database. Each interleaving is a handful of Gets, Sets, Invalidates, Deletes and Refreshes
// of one key, from several instances (without L1), started at random moments, with loaders that
// take from nothing to two lease TTLs. Invalidate is soft by design (it serves the old value
// while one refresh runs), so only Set and Delete raise the bar.

// versionedDB is the database: a version per key that every write advances before it writes the
// cache, as a write path does. Writers of a key take turns (a row lock held until the cache is
// written): otherwise two writers could write the cache in the opposite order of the database,
// which no cache can fix.
type versionedDB struct {
	mu      sync.Mutex
	version map[string]int64       // the database
	floor   map[string]int64       // the version of the last Set or Delete that returned
	writers map[string]*sync.Mutex // one write path at a time per key
}

func newVersionedDB() *versionedDB {
	return &versionedDB{version: map[string]int64{}, floor: map[string]int64{}, writers: map[string]*sync.Mutex{}}
}

func (d *versionedDB) read(key string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.version[key]
}

func (d *versionedDB) bar(key string) int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.floor[key]
}

// write runs a write path: it advances the database, then calls write with the new version;
// if write succeeds and raises is set, no later Get may return less.
func (d *versionedDB) write(key string, raises bool, write func(v int64) error) error {
	d.mu.Lock()
	w := d.writers[key]
	if w == nil {
		w = new(sync.Mutex)
		d.writers[key] = w
	}
	d.mu.Unlock()
	w.Lock()
	defer w.Unlock()
	d.mu.Lock()
	d.version[key]++
	v := d.version[key]
	d.mu.Unlock()
	err := write(v)
	if err == nil && raises {
		d.mu.Lock()
		d.floor[key] = max(d.floor[key], v)
		d.mu.Unlock()
	}
	return err
}

// loader reads the database when it starts, as a query sees its snapshot, then takes pause.
func (d *versionedDB) loader(pause time.Duration) stampede.Loader[int64] {
	return func(ctx context.Context, key string) (int64, error) {
		v := d.read(key)
		if pause > 0 {
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		return v, nil
	}
}

// propTiming sets the scale of an interleaving.
type propTiming struct {
	leaseTTL time.Duration // of the caches
	window   time.Duration // operations start within it
}

// propChecker counts the interleavings run and the violations found.
type propChecker struct {
	interleavings, ops, gets, bad, failed atomic.Int64
	mu                                    sync.Mutex
	violations                            []string // the first 20
	errs                                  []string // the first 20
}

func (c *propChecker) violation(format string, args ...any) {
	c.bad.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.violations) < 20 {
		c.violations = append(c.violations, fmt.Sprintf(format, args...))
	}
}

func (c *propChecker) error(format string, args ...any) {
	c.failed.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) < 20 {
		c.errs = append(c.errs, fmt.Sprintf(format, args...))
	}
}

// runInterleaving runs one random interleaving of operations on key over caches and checks every
// Get against the property.
func runInterleaving(rng *rand.Rand, caches []*stampede.Cache[int64], db *versionedDB, key string, tm propTiming, chk *propChecker) {
	pause := func() time.Duration {
		switch x := rng.Float64(); {
		case x < 0.4:
			return 0
		case x < 0.7:
			return time.Duration(rng.Int64N(int64(tm.leaseTTL / 2)))
		default: // longer than the lease: it must be extended
			return tm.leaseTTL + time.Duration(rng.Int64N(int64(tm.leaseTTL)))
		}
	}
	type op struct {
		kind  int
		c     *stampede.Cache[int64]
		at    time.Duration
		pause time.Duration
	}
	ops := make([]op, 3+rng.IntN(8))
	for i := range ops {
		ops[i] = op{
			kind:  rng.IntN(9), // 0-4 Get, 5 Set, 6 Delete, 7 Invalidate, 8 Refresh
			c:     caches[rng.IntN(len(caches))],
			at:    time.Duration(rng.Int64N(int64(tm.window))),
			pause: pause(),
		}
	}
	var wg sync.WaitGroup
	for i, o := range ops {
		wg.Go(func() {
			time.Sleep(o.at)
			chk.ops.Add(1)
			switch o.kind {
			case 5:
				if err := db.write(key, true, func(v int64) error { return o.c.Set(ctx, key, v) }); err != nil {
					chk.error("%s op %d Set: %v", key, i, err)
				}
			case 6:
				if err := db.write(key, true, func(int64) error { return o.c.Delete(ctx, key) }); err != nil {
					chk.error("%s op %d Delete: %v", key, i, err)
				}
			case 7:
				if err := db.write(key, false, func(int64) error { return o.c.Invalidate(ctx, key) }); err != nil {
					chk.error("%s op %d Invalidate: %v", key, i, err)
				}
			case 8:
				if _, err := o.c.Refresh(ctx, key, db.loader(o.pause)); err != nil {
					chk.error("%s op %d Refresh: %v", key, i, err)
				}
			default:
				chk.gets.Add(1)
				bar := db.bar(key)
				v, err := o.c.Get(ctx, key, db.loader(o.pause))
				switch {
				case err != nil:
					chk.error("%s op %d Get: %v", key, i, err)
				case v < bar:
					chk.violation("%s op %d: a Get that started after the write of version %d returned version %d", key, i, bar, v)
				case v > db.read(key):
					chk.violation("%s op %d: a Get returned version %d, which the database never had", key, i, v)
				}
			}
		})
	}
	wg.Wait()
	chk.interleavings.Add(1)
}

// propertySeed is the seed of the property tests: STAMPEDE_PROPERTY_SEED, or 1.
func propertySeed(t *testing.T) uint64 {
	seed := uint64(1)
	if s := os.Getenv("STAMPEDE_PROPERTY_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (STAMPEDE_PROPERTY_SEED=%d replays it)", seed, seed)
	return seed
}

// TestPropertyNoStaleReadAfterWrite runs 3,000 interleavings on miniredis under the race
// detector, as CI's integration run does, and 2,000 without it, which makes them five times
// faster, for a quick go test (STAMPEDE_PROPERTY_INTERLEAVINGS sets another number). They run in
// testing/synctest bubbles: fake time, so a pause of two lease TTLs costs nothing. Each bubble
// has three instances and runs its interleavings 50 keys at a time, on the same 50 keys, so that
// each starts from what the previous one left: a value fresh, stale or expired, a fence, a lease.
// The bubbles run in parallel.
func TestPropertyNoStaleReadAfterWrite(t *testing.T) {
	const (
		perBubble = 500
		keys      = 50 // miniredis looks at every key on every command: keep them few
	)
	total := 2_000
	if raceEnabled {
		total = 3_000 // CI's budget; STAMPEDE_PROPERTY_INTERLEAVINGS runs more
	}
	if s := os.Getenv("STAMPEDE_PROPERTY_INTERLEAVINGS"); s != "" {
		var err error
		total, err = strconv.Atoi(s)
		require.NoError(t, err)
	}
	seed := propertySeed(t)
	tm := propTiming{leaseTTL: 20 * time.Millisecond, window: 100 * time.Millisecond}
	var chk propChecker
	t.Run("bubbles", func(t *testing.T) {
		for b := range (total + perBubble - 1) / perBubble {
			ttl := time.Duration(1+b%3) * 100 * time.Millisecond // values expire during some interleavings
			t.Run(fmt.Sprintf("%d-ttl%v", b, ttl), func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					caches := fleet[int64](t, redistest.Mini(t), 3, stampede.WithoutL1(),
						stampede.WithLeaseTTL(tm.leaseTTL), stampede.WithTTL(ttl))
					db := newVersionedDB()
					rng := rand.New(rand.NewPCG(seed, uint64(b)))
					var wg sync.WaitGroup
					for range perBubble / keys {
						for i := range keys {
							r := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
							wg.Go(func() { runInterleaving(r, caches, db, fmt.Sprint("k", i), tm, &chk) })
						}
						wg.Wait()
					}
				})
			})
		}
	})
	reportProperty(t, &chk)
}

// TestIntegrationPropertyNoStaleReadAfterWrite runs the property on the real Redis, in real
// time: fewer interleavings, with a 50 ms lease, and a Redis timeout long enough that a busy
// machine does not turn writes into errors (a timed-out write would only not raise the bar).
func TestIntegrationPropertyNoStaleReadAfterWrite(t *testing.T) {
	addr := redistest.Addr(t)
	seed := propertySeed(t)
	tm := propTiming{leaseTTL: 50 * time.Millisecond, window: 200 * time.Millisecond}
	ns := redistest.Namespace(t)
	caches := make([]*stampede.Cache[int64], 3)
	for i := range caches {
		client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = client.Close() })
		c, err := stampede.New[int64](client, stampede.WithNamespace(ns), stampede.WithoutL1(),
			stampede.WithLeaseTTL(tm.leaseTTL), stampede.WithRedisTimeout(2*time.Second))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		caches[i] = c
	}
	var chk propChecker
	db := newVersionedDB()
	rng := rand.New(rand.NewPCG(seed, 0))
	var wg sync.WaitGroup
	for batch := 0; batch < 400; batch += 50 {
		for i := range 50 {
			r := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
			key := fmt.Sprint("k", batch+i)
			wg.Go(func() { runInterleaving(r, caches, db, key, tm, &chk) })
		}
		wg.Wait()
	}
	reportProperty(t, &chk)
}

func reportProperty(t *testing.T, chk *propChecker) {
	t.Helper()
	t.Logf("%d interleavings, %d operations (%d Gets checked): %d violations, %d errors",
		chk.interleavings.Load(), chk.ops.Load(), chk.gets.Load(), chk.bad.Load(), chk.failed.Load())
	require.Empty(t, chk.violations)
	require.Empty(t, chk.errs)
}
