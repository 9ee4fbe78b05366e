package stampedetest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/stampedetest"
)

var ctx = context.Background()

// counter is a loader that counts its calls and returns value.
type counter struct {
	calls   atomic.Int64
	value   atomic.Value // string
	latency time.Duration
}

func newCounter(value string) *counter {
	c := &counter{}
	c.value.Store(value)
	return c
}

func (c *counter) load(context.Context, string) (string, error) {
	c.calls.Add(1)
	v := c.value.Load().(string)
	time.Sleep(c.latency)
	return v, nil
}

// mustNotLoad fails the test when a Get that should be answered from the cache loads.
func mustNotLoad(t *testing.T) stampede.Loader[string] {
	return func(context.Context, string) (string, error) {
		t.Error("loaded a value the cache should have had")
		return "", errors.New("unexpected load")
	}
}

// TestNew: the cache works, and the test's end closes it and everything it started.
func TestNew(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var c *stampede.Cache[string]
	t.Run("use", func(t *testing.T) {
		c = stampedetest.New[string](t)
		src := newCounter("v1")
		for range 3 {
			v, err := c.Get(ctx, "k", src.load)
			require.NoError(t, err)
			require.Equal(t, "v1", v)
		}
		require.EqualValues(t, 1, src.calls.Load())
		require.NoError(t, c.Set(ctx, "k", "v2"))
		v, err := c.Get(ctx, "k", mustNotLoad(t))
		require.NoError(t, err)
		require.Equal(t, "v2", v)
	})
	_, err := c.Get(ctx, "k", mustNotLoad(t))
	require.ErrorIs(t, err, stampede.ErrClosed, "closed at the end of the test that made it")
}

// TestBadArguments: an option New refuses, or a negative fleet, fails the test with the
// reason.
func TestBadArguments(t *testing.T) {
	fatal := func(f func(testing.TB)) string {
		ft := &fakeT{TB: t}
		defer ft.cleanup()
		done := make(chan struct{})
		go func() { // Fatalf ends the goroutine, as it does a test's
			defer close(done)
			f(ft)
			t.Error("returned after a bad argument")
		}()
		<-done
		return ft.fatal
	}
	msg := fatal(func(t testing.TB) { stampedetest.New[string](t, stampede.WithTTL(-time.Second)) })
	require.Contains(t, msg, "stampedetest: stampede: ")
	require.Contains(t, msg, "TTL")
	msg = fatal(func(t testing.TB) { stampedetest.NewFleet[string](t, -1) })
	require.Contains(t, msg, "NewFleet(-1)")
	require.Empty(t, stampedetest.NewFleet[string](t, 0))
}

// fakeT records Fatalf instead of failing the test, and runs its cleanups when asked.
type fakeT struct {
	testing.TB
	fatal    string
	cleanups []func()
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Cleanup(fn func())     { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Errorf(string, ...any) { f.TB.Error("unexpected Errorf") }
func (f *fakeT) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func (f *fakeT) cleanup() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// TestSynctest: inside a bubble, the cache, its L1 and the Redis's expiry all follow the fake
// clock, and everything stops when the bubble's test ends (synctest fails otherwise).
func TestSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := stampedetest.NewServer(t)
		c := stampedetest.NewOn[string](t, srv, stampede.WithTTL(time.Minute), stampede.WithJitter(0),
			stampede.WithEarlyRefresh(0))
		src := newCounter("v1")
		src.latency = 50 * time.Millisecond
		start := time.Now()
		v, err := c.Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v1", v)
		require.Equal(t, src.latency, time.Since(start), "the load took its fake time")
		require.Equal(t, time.Minute, srv.Miniredis().TTL("stampede:{k}"))

		time.Sleep(30 * time.Second)
		src.value.Store("v2")
		v, err = c.Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v1", v, "still fresh")
		require.Equal(t, 30*time.Second, srv.Miniredis().TTL("stampede:{k}"), "Redis's TTL follows the bubble's clock")

		time.Sleep(31 * time.Second)
		require.False(t, srv.Miniredis().Exists("stampede:{k}"), "Redis expired it")
		v, err = c.Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v2", v)
		require.EqualValues(t, 2, src.calls.Load())
	})
}

// TestFleetSharesRedis: a value one instance writes, or loads, the others read from Redis.
func TestFleetSharesRedis(t *testing.T) {
	caches := stampedetest.NewFleet[string](t, 3)
	require.Len(t, caches, 3)
	require.NoError(t, caches[0].Set(ctx, "set", "v"))
	src := newCounter("loaded")
	_, err := caches[1].Get(ctx, "loaded", src.load)
	require.NoError(t, err)
	for _, c := range caches {
		v, err := c.Get(ctx, "set", mustNotLoad(t))
		require.NoError(t, err)
		require.Equal(t, "v", v)
		v, err = c.Get(ctx, "loaded", mustNotLoad(t))
		require.NoError(t, err)
		require.Equal(t, "loaded", v)
	}
	require.EqualValues(t, 2, caches[2].Stats().L2Hits, "an instance that wrote nothing read both from Redis")
}

// TestFleetStampede: 100 concurrent Gets of one key over 4 instances load it once (Lease, the
// default strategy), on the real clock and on a bubble's.
func TestFleetStampede(t *testing.T) {
	run := func(t *testing.T) {
		caches := stampedetest.NewFleet[string](t, 4)
		src := newCounter("v")
		src.latency = 50 * time.Millisecond
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 100 {
			wg.Go(func() {
				<-start
				v, err := caches[i%len(caches)].Get(ctx, "hot", src.load)
				if err != nil || v != "v" {
					t.Errorf("Get = %q, %v", v, err)
				}
			})
		}
		close(start)
		wg.Wait()
		require.EqualValues(t, 1, src.calls.Load(), "one load fleet-wide")
		var loads, waits uint64
		for _, c := range caches {
			loads += c.Stats().Loads
			waits += c.Stats().LeaseWaits
		}
		require.EqualValues(t, 1, loads)
		require.NotZero(t, waits, "the other instances waited for the lease holder")
	}
	t.Run("real clock", run)
	t.Run("synctest", func(t *testing.T) { synctest.Test(t, run) })
}

// TestInvalidation: a write on one instance reaches the L1 of the others, and a soft
// invalidation reloads once fleet-wide.
func TestInvalidation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := stampedetest.NewFleet[string](t, 3, stampede.WithStaleWhileRevalidate(time.Minute))
		a, b, c := caches[0], caches[1], caches[2]
		src := newCounter("v1")
		get := func(cache *stampede.Cache[string]) string {
			t.Helper()
			v, err := cache.Get(ctx, "k", src.load)
			require.NoError(t, err)
			return v
		}
		for _, cache := range caches {
			require.Equal(t, "v1", get(cache)) // in every L1 now
		}
		require.EqualValues(t, 1, src.calls.Load())

		// Delete on a: the next reader loads the new value, everywhere.
		src.value.Store("v2")
		require.NoError(t, a.Delete(ctx, "k"))
		time.Sleep(10 * time.Millisecond) // the eviction window (WithEvictionWindow's default)
		synctest.Wait()                   // the eviction reached b and c
		require.Equal(t, "v2", get(b))
		require.Equal(t, "v2", get(c))
		require.Equal(t, "v2", get(a))
		require.EqualValues(t, 2, src.calls.Load())

		// Set on b: every instance reads it without a load.
		require.NoError(t, b.Set(ctx, "k", "v3"))
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		for _, cache := range caches {
			require.Equal(t, "v3", get(cache))
		}
		require.EqualValues(t, 2, src.calls.Load())

		// Invalidate on c: readers get v3 at once while one refresh, fleet-wide, loads v4.
		src.value.Store("v4")
		src.latency = 100 * time.Millisecond
		require.NoError(t, c.Invalidate(ctx, "k"))
		synctest.Wait()
		start := time.Now()
		for _, cache := range caches {
			require.Equal(t, "v3", get(cache), "the stale value, at once")
		}
		require.Zero(t, time.Since(start))
		time.Sleep(src.latency)
		synctest.Wait()
		for _, cache := range caches {
			require.Equal(t, "v4", get(cache))
		}
		require.EqualValues(t, 3, src.calls.Load(), "one refresh fleet-wide")
	})
}

// TestServer: a Server's Redis can be inspected through a client or miniredis, lost and
// brought back; the caches answer through their loaders meanwhile.
func TestServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := stampedetest.NewServer(t)
		a := stampedetest.NewOn[string](t, srv, stampede.WithNamespace("users"))
		b := stampedetest.NewOn[string](t, srv, stampede.WithNamespace("users"))
		require.NoError(t, a.Set(ctx, "42", "Grace"))
		v, err := b.Get(ctx, "42", mustNotLoad(t))
		require.NoError(t, err)
		require.Equal(t, "Grace", v)

		rdb := srv.Client()
		require.NoError(t, rdb.Ping(ctx).Err())
		keys, err := rdb.Keys(ctx, "users:*").Result()
		require.NoError(t, err)
		require.Contains(t, keys, "users:{42}")
		require.True(t, srv.Miniredis().Exists("users:{42}"))

		srv.Close()
		require.Error(t, rdb.Ping(ctx).Err(), "unreachable")
		src := newCounter("loaded")
		v, err = b.Get(ctx, "other", src.load)
		require.NoError(t, err, "the loader answers without Redis")
		require.Equal(t, "loaded", v)
		require.NotZero(t, b.Stats().RedisErrors)

		srv.Restart()
		require.NoError(t, rdb.Ping(ctx).Err())
		require.True(t, srv.Miniredis().Exists("users:{42}"), "the data survived")
		time.Sleep(2 * time.Second) // the subscriptions come back
		synctest.Wait()
		v, err = b.Get(ctx, "42", mustNotLoad(t))
		require.NoError(t, err)
		require.Equal(t, "Grace", v)
		time.Sleep(time.Second) // an L1 without a subscription keeps entries 100 ms
		hits := b.Stats().L1Hits
		v, err = b.Get(ctx, "42", mustNotLoad(t))
		require.NoError(t, err)
		require.Equal(t, "Grace", v)
		require.Equal(t, hits+1, b.Stats().L1Hits, "b is subscribed again")
		require.NoError(t, a.Delete(ctx, "42"))
		time.Sleep(10 * time.Millisecond) // the eviction window (WithEvictionWindow's default)
		synctest.Wait()
		v, err = b.Get(ctx, "42", src.load)
		require.NoError(t, err)
		require.Equal(t, "loaded", v, "b's L1 heard the Delete over the new subscription")
	})
}

// TestOwnClients: every instance has a Redis client, and so a connection, of its own.
func TestOwnClients(t *testing.T) {
	srv := stampedetest.NewServer(t)
	for range 3 {
		stampedetest.NewOn[string](t, srv)
	}
	// Each cache holds one subscription connection of its own.
	require.GreaterOrEqual(t, srv.Miniredis().CurrentConnectionCount(), 3)
}
