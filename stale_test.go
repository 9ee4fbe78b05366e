package stampede_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

func TestStaleWhileRevalidate(t *testing.T) {
	for _, l1 := range []bool{true, false} {
		t.Run(map[bool]string{true: "L1", false: "L2"}[l1], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := redistest.Mini(t)
				opts := []stampede.Option{stampede.WithTTL(time.Second), stampede.WithJitter(0),
					stampede.WithEarlyRefresh(0), stampede.WithStaleWhileRevalidate(10 * time.Second)}
				if !l1 {
					opts = append(opts, stampede.WithoutL1())
				}
				caches := fleet[string](t, m, 2, opts...)
				src := newSource("v1")
				_, err := caches[0].Get(ctx, "k", src.load)
				require.NoError(t, err)
				require.Equal(t, 11*time.Second, m.TTL("stampede:{k}"), "Redis keeps it for TTL + stale window")

				time.Sleep(1500 * time.Millisecond)
				src.value.Store("v2")
				src.latency = 100 * time.Millisecond
				start := time.Now()
				values, errs := getAll(ctx, caches, 200, "k", src.load)
				require.Zero(t, time.Since(start), "stale values are served at once")
				for i := range values {
					require.NoError(t, errs[i])
					require.Equal(t, "v1", values[i])
				}
				time.Sleep(src.latency)
				synctest.Wait()
				require.EqualValues(t, 2, src.calls.Load(), "one refresh fleet-wide")
				for _, c := range caches {
					v, err := c.Get(ctx, "k", src.load)
					require.NoError(t, err)
					require.Equal(t, "v2", v)
				}

				// Past the stale window, the value is a miss again.
				time.Sleep(12 * time.Second)
				src.value.Store("v3")
				start = time.Now()
				v, err := caches[1].Get(ctx, "k", src.load)
				require.NoError(t, err)
				require.Equal(t, "v3", v)
				require.Equal(t, src.latency, time.Since(start))
			})
		})
	}
}

// TestStaleReadersAskForTheLeaseOnce: while another instance refreshes a stale key, a reader
// that found its lease held does not ask again on every read.
func TestStaleReadersAskForTheLeaseOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		opts := []stampede.Option{stampede.WithTTL(time.Second), stampede.WithEarlyRefresh(0),
			stampede.WithStaleWhileRevalidate(time.Minute)}
		a := one[string](t, m, opts...)
		bClient := redistest.Client(t, m)
		var scripts atomic.Int64
		bClient.AddHook(countScripts{&scripts})
		b, err := stampede.New[string](bClient, opts...)
		require.NoError(t, err)
		defer b.Close()

		src := newSource("v1")
		_, err = a.Get(ctx, "k", src.load)
		require.NoError(t, err)
		time.Sleep(2 * time.Second) // stale now
		started, release := src.hold()
		_, err = a.Get(ctx, "k", src.load) // a starts the refresh, which holds the lease
		require.NoError(t, err)
		<-started
		for range 100 {
			_, err := b.Get(ctx, "k", src.load)
			require.NoError(t, err)
			time.Sleep(time.Millisecond)
		}
		require.EqualValues(t, 1, scripts.Load(), "b asked for the lease once")
		release()
	})
}

// countScripts counts the scripts a client runs.
type countScripts struct{ n *atomic.Int64 }

func (h countScripts) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h countScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "evalsha" || name == "eval" {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func TestStaleIfError(t *testing.T) {
	for _, l1 := range []bool{true, false} {
		t.Run(map[bool]string{true: "L1", false: "L2"}[l1], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ages []time.Duration
				var mu sync.Mutex
				opts := []stampede.Option{stampede.WithTTL(time.Second), stampede.WithJitter(0), stampede.WithEarlyRefresh(0),
					stampede.WithStaleIfError(10 * time.Second),
					stampede.WithHooks(stampede.Hooks{OnStaleServed: func(key string, age time.Duration) {
						mu.Lock()
						ages = append(ages, age)
						mu.Unlock()
					}})}
				if !l1 {
					opts = append(opts, stampede.WithoutL1())
				}
				c := one[string](t, redistest.Mini(t), opts...)
				src := newSource("v1")
				_, err := c.Get(ctx, "k", src.load)
				require.NoError(t, err)

				time.Sleep(3 * time.Second)
				src.fail(errDatabase)
				v, err := c.Get(ctx, "k", src.load)
				require.NoError(t, err)
				require.Equal(t, "v1", v)
				require.EqualValues(t, 1, c.Stats().StaleServed)
				require.Equal(t, []time.Duration{2 * time.Second}, ages)

				time.Sleep(9 * time.Second)
				_, err = c.Get(ctx, "k", src.load)
				require.ErrorIs(t, err, errDatabase, "past the window the error is returned")
			})
		})
	}
}

// TestEarlyRefreshKeepsHotKeyFresh reads a hot key on four instances for ten TTLs: with early
// refresh, no read ever waits for a load and the key is loaded about once per TTL, fleet-wide.
func TestEarlyRefreshKeepsHotKeyFresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 4, stampede.WithTTL(time.Second), stampede.WithJitter(0))
		src := newSource("v")
		src.latency = 50 * time.Millisecond
		_, err := caches[0].Get(ctx, "hot", src.load)
		require.NoError(t, err)

		var slowest time.Duration
		for i := range 10_000 { // 1,000 reads per second for 10 s
			start := time.Now()
			_, err := caches[i%4].Get(ctx, "hot", src.load)
			require.NoError(t, err)
			slowest = max(slowest, time.Since(start))
			time.Sleep(time.Millisecond)
		}
		require.Zero(t, slowest, "no read waited for a load")
		loads := src.calls.Load()
		require.GreaterOrEqual(t, loads, int64(10))
		require.LessOrEqual(t, loads, int64(16))
		var refreshes uint64
		for _, c := range caches {
			refreshes += c.Stats().EarlyRefreshes
		}
		require.EqualValues(t, loads-1, refreshes)
	})
}

// TestCloseLeavesNoGoroutine runs a cache over TCP, outside any bubble, through loads, waits and
// background refreshes, and checks that Close stops all of its goroutines.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	m, err := miniredis.Run()
	require.NoError(t, err)
	defer m.Close()
	client := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
	defer client.Close()
	c, err := stampede.New[string](client, stampede.WithTTL(time.Second), stampede.WithStaleWhileRevalidate(time.Minute))
	require.NoError(t, err)
	src := newSource("v")
	src.latency = 10 * time.Millisecond
	_, errs := getAll(context.Background(), []*stampede.Cache[string]{c}, 50, "k", src.load)
	for _, err := range errs {
		require.NoError(t, err)
	}
	m.FastForward(2 * time.Second)
	_, release := src.hold()
	_, err = c.Get(context.Background(), "k", src.load) // stale: starts a refresh that never ends
	require.NoError(t, err)
	require.NoError(t, c.Close())
	release()
}
