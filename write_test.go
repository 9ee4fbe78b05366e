package stampede_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// TestWritesFenceLoadsInFlight: a load that began before a write returns its value to the
// callers that were waiting for it, but cannot write it to the cache afterwards; after the
// write returns, no Get on any instance sees the old value.
func TestWritesFenceLoadsInFlight(t *testing.T) {
	writes := map[string]struct {
		write func(c *stampede.Cache[string]) error
		after string // what a Get returns after the write
	}{
		"Delete":     {func(c *stampede.Cache[string]) error { return c.Delete(ctx, "k") }, "new"},
		"Set":        {func(c *stampede.Cache[string]) error { return c.Set(ctx, "k", "set") }, "set"},
		"Invalidate": {func(c *stampede.Cache[string]) error { return c.Invalidate(ctx, "k") }, "new"},
	}
	for name, tt := range writes {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				caches := fleet[string](t, redistest.Mini(t), 3)
				src := newSource("old")
				started, release := src.hold()
				loaded := make(chan string)
				go func() {
					v, err := caches[0].Get(ctx, "k", src.load)
					require.NoError(t, err)
					loaded <- v
				}()
				<-started // the load read "old" from the source

				require.NoError(t, tt.write(caches[1]))
				src.value.Store("new")
				release()
				require.Equal(t, "old", <-loaded, "the callers that asked before the write get the load")
				synctest.Wait()
				require.EqualValues(t, 1, caches[0].Stats().FencedLoads)

				for _, c := range caches {
					v, err := c.Get(ctx, "k", src.load)
					require.NoError(t, err)
					require.Equal(t, tt.after, v)
				}
			})
		})
	}
}

func TestWritesEvictEveryL1(t *testing.T) {
	writes := map[string]func(c *stampede.Cache[string], src *source) error{
		"Set":        func(c *stampede.Cache[string], _ *source) error { return c.Set(ctx, "k", "v2") },
		"Delete":     func(c *stampede.Cache[string], _ *source) error { return c.Delete(ctx, "k") },
		"Invalidate": func(c *stampede.Cache[string], _ *source) error { return c.Invalidate(ctx, "k") },
		"Refresh": func(c *stampede.Cache[string], src *source) error {
			_, err := c.Refresh(ctx, "k", src.load)
			return err
		},
	}
	for name, write := range writes {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				caches := fleet[string](t, redistest.Mini(t), 3, stampede.WithL1(100, time.Hour))
				src := newSource("v1")
				for range 2 {
					for _, c := range caches {
						_, err := c.Get(ctx, "k", src.load)
						require.NoError(t, err)
					}
					synctest.Wait()
				}
				for _, c := range caches {
					require.True(t, stampede.InL1(c, "k"))
				}
				src.value.Store("v2")
				require.NoError(t, write(caches[0], src))
				afterWindow()
				for _, c := range caches[1:] {
					require.False(t, stampede.InL1(c, "k"), "the write evicted the key from every L1")
				}
			})
		})
	}
}

func TestSetIsWriteThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 2)
		src := newSource("loaded")
		require.NoError(t, caches[0].Set(ctx, "k", "written"))
		for _, c := range caches {
			v, err := c.Get(ctx, "k", src.load)
			require.NoError(t, err)
			require.Equal(t, "written", v)
		}
		require.Zero(t, src.calls.Load())
	})
}

// TestInvalidateHotKey is soft invalidation under load: every reader keeps getting the old value
// at once while exactly one load runs, fleet-wide; then the new value.
func TestInvalidateHotKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 4, stampede.WithEarlyRefresh(0))
		src := newSource("old")
		for _, c := range caches {
			_, err := c.Get(ctx, "hot", src.load)
			require.NoError(t, err)
		}
		src.value.Store("new")
		src.latency = 50 * time.Millisecond
		require.NoError(t, caches[0].Invalidate(ctx, "hot"))
		afterWindow() // the invalidation reaches every instance

		start := time.Now()
		values, errs := getAll(ctx, caches, 400, "hot", src.load)
		require.Zero(t, time.Since(start), "nobody waited for the load")
		for i := range values {
			require.NoError(t, errs[i])
			require.Equal(t, "old", values[i])
		}
		time.Sleep(src.latency)
		synctest.Wait()
		require.EqualValues(t, 2, src.calls.Load(), "the first load and one refresh")
		for _, c := range caches {
			v, err := c.Get(ctx, "hot", src.load)
			require.NoError(t, err)
			require.Equal(t, "new", v)
		}
		var stale uint64
		for _, c := range caches {
			stale += c.Stats().StaleServed
		}
		require.EqualValues(t, 400, stale)
	})
}

// TestRefreshNeverEmpty: while Refresh loads, readers get the old value, stale, and nobody else
// loads; then the new value.
func TestRefreshNeverEmpty(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 2)
		src := newSource("old")
		_, err := caches[0].Get(ctx, "k", src.load)
		require.NoError(t, err)

		src.value.Store("new")
		started, release := src.hold()
		refreshed := make(chan string)
		go func() {
			v, err := caches[0].Refresh(ctx, "k", src.load)
			require.NoError(t, err)
			refreshed <- v
		}()
		<-started
		values, errs := getAll(ctx, caches, 100, "k", src.load)
		for i := range values {
			require.NoError(t, errs[i])
			require.Equal(t, "old", values[i])
		}
		release()
		require.Equal(t, "new", <-refreshed)
		synctest.Wait()
		for _, c := range caches {
			v, err := c.Get(ctx, "k", src.load)
			require.NoError(t, err)
			require.Equal(t, "new", v)
		}
		require.EqualValues(t, 2, src.calls.Load(), "the first load and the refresh")
	})
}

func TestRefreshFailureKeepsTheOldValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t))
		src := newSource("old")
		_, err := c.Get(ctx, "k", src.load)
		require.NoError(t, err)
		src.fail(errDatabase)
		_, err = c.Refresh(ctx, "k", src.load)
		require.ErrorIs(t, err, errDatabase)
		v, err := c.Get(ctx, "k", func(context.Context, string) (string, error) { return "", errDatabase })
		require.NoError(t, err)
		require.Equal(t, "old", v)
	})
}

// TestResubscribeClearsL1: when the subscription's connection breaks, invalidations may be lost,
// so the L1 is cleared once a subscription is back.
func TestResubscribeClearsL1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		client, kill := redistest.KillableClient(t, m)
		c, err := stampede.New[string](client)
		require.NoError(t, err)
		defer c.Close()
		for range 2 {
			_, err := c.Get(ctx, "k", newSource("v").load)
			require.NoError(t, err)
			synctest.Wait()
		}
		require.True(t, stampede.InL1(c, "k"))
		kill()
		time.Sleep(time.Second)
		synctest.Wait()
		require.True(t, stampede.Subscribed(c))
		require.False(t, stampede.InL1(c, "k"))
	})
}

// TestWaitersPollWithoutSubscription: when Redis refuses the subscription, New still succeeds
// and waiters find the value by polling.
func TestWaitersPollWithoutSubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		refusing := redistest.NoSubscribe(redistest.Client(t, m))
		caches := []*stampede.Cache[string]{one[string](t, m)}
		c, err := stampede.New[string](refusing)
		require.NoError(t, err)
		defer c.Close()
		require.False(t, stampede.Subscribed(c))
		caches = append(caches, c)

		src := newSource("v")
		started, release := src.hold()
		go func() {
			_, err := caches[0].Get(ctx, "k", src.load)
			require.NoError(t, err)
		}()
		<-started
		done := make(chan time.Time)
		go func() {
			v, err := caches[1].Get(ctx, "k", src.load)
			require.NoError(t, err)
			require.Equal(t, "v", v)
			done <- time.Now()
		}()
		time.Sleep(1030 * time.Millisecond) // between two polls, which come every 100 ms
		releasedAt := time.Now()
		release()
		require.Equal(t, 70*time.Millisecond, (<-done).Sub(releasedAt), "the waiter's next poll finds the value")
		require.EqualValues(t, 1, src.calls.Load())
	})
}

// TestSetKeepsItsValue: the instance that writes a value through keeps it in its L1, although
// its own message may come back before the Set's reply.
func TestSetKeepsItsValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 2)
		for i := range 200 {
			key := fmt.Sprint("k", i)
			require.NoError(t, caches[0].Set(ctx, key, "v"))
			synctest.Wait()
			require.True(t, stampede.InL1(caches[0], key), key)
		}
		// Two writers of one key: the older value does not survive in the L1 of the instance that
		// wrote it when the newer write's message comes while it writes.
		require.NoError(t, caches[0].Set(ctx, "k", "old"))
		require.NoError(t, caches[1].Set(ctx, "k", "new"))
		afterWindow()
		v, err := caches[0].Get(ctx, "k", newSource("unused").load)
		require.NoError(t, err)
		require.Equal(t, "new", v)
	})
}
