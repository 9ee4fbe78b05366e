package stampede_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// warm makes every cache hold keys in its L1.
func warm(t *testing.T, caches []*stampede.Cache[string], keys []string) {
	t.Helper()
	for _, c := range caches {
		for _, k := range keys {
			_, err := c.Get(ctx, k, constLoader("v1"))
			require.NoError(t, err)
		}
	}
	synctest.Wait()
	for _, c := range caches {
		for _, k := range keys {
			require.True(t, stampede.InL1(c, k))
		}
	}
}

// TestEvictionsWaitForTheWindow: the writes of a window reach the other instances' L1s together,
// in one flush, when the window ends, and not before; the writer keeps its own values.
func TestEvictionsWaitForTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		writerClient := redistest.Client(t, m)
		var scripts atomic.Int64
		writerClient.AddHook(countScripts{&scripts})
		writer, err := stampede.New[string](writerClient, stampede.WithL1(100, time.Hour))
		require.NoError(t, err)
		defer writer.Close()
		readers := fleet[string](t, m, 2, stampede.WithL1(100, time.Hour))
		keys := []string{"a", "b", "c", "d", "e"}
		warm(t, append(readers, writer), keys)

		require.NoError(t, writer.Set(ctx, "other", "v")) // Redis caches the scripts
		afterWindow()
		scripts.Store(0)
		for _, k := range keys {
			require.NoError(t, writer.Set(ctx, k, "v2"))
		}
		synctest.Wait()
		for _, c := range readers {
			for _, k := range keys {
				require.True(t, stampede.InL1(c, k), "%s: evicted only when the window ends", k)
			}
		}
		time.Sleep(stampede.DefaultEvictionWindow)
		synctest.Wait()
		require.EqualValues(t, len(keys)+1, scripts.Load(), "the writes and one flush")
		for _, c := range readers {
			for _, k := range keys {
				require.False(t, stampede.InL1(c, k), "%s evicted", k)
				v, err := c.Get(ctx, k, constLoader("unused"))
				require.NoError(t, err)
				require.Equal(t, "v2", v)
			}
		}
		for _, k := range keys {
			require.True(t, stampede.InL1(writer, k), "the writer keeps its own write")
		}
	})
}

// TestBatchWritesShareTheWindow: SetMany and InvalidateMany append their keys' evictions to the
// window as single-key writes do: one script call each, and one flush for all of them.
func TestBatchWritesShareTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		writerClient := redistest.Client(t, m)
		var scripts atomic.Int64
		writerClient.AddHook(countScripts{&scripts})
		writer, err := stampede.New[string](writerClient, stampede.WithL1(100, time.Hour))
		require.NoError(t, err)
		defer writer.Close()
		readers := fleet[string](t, m, 2, stampede.WithL1(100, time.Hour))
		keys := []string{"a", "b", "c", "d", "e"}
		warm(t, readers, keys)

		require.NoError(t, writer.SetMany(ctx, map[string]string{"other": "v"})) // Redis caches the scripts
		require.NoError(t, writer.InvalidateMany(ctx, []string{"other"}))
		afterWindow()
		scripts.Store(0)
		require.NoError(t, writer.SetMany(ctx, map[string]string{"a": "v2", "b": "v2", "c": "v2"}))
		require.NoError(t, writer.InvalidateMany(ctx, []string{"d", "e"}))
		synctest.Wait()
		for _, c := range readers {
			for _, k := range keys {
				require.True(t, stampede.InL1(c, k), "%s: evicted only when the window ends", k)
			}
		}
		afterWindow()
		require.EqualValues(t, 3, scripts.Load(), "two batch writes and one flush")
		for _, c := range readers {
			for _, k := range keys {
				require.False(t, stampede.InL1(c, k), "%s evicted", k)
			}
		}
	})
}

// TestEvictionWindowZero: WithEvictionWindow(0) evicts at once, one message per write.
func TestEvictionWindowZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 2, stampede.WithL1(100, time.Hour), stampede.WithEvictionWindow(0))
		warm(t, caches, []string{"k"})
		require.NoError(t, caches[0].Set(ctx, "k", "v2"))
		synctest.Wait()
		require.False(t, stampede.InL1(caches[1], "k"))
	})
}

// failFlush makes the flushes of evictions fail, as if their writer died before the window
// ended.
// failFlush fails every flush while on, and otherwise the next times flushes.
type failFlush struct {
	on    atomic.Bool
	times atomic.Int64
}

func (h *failFlush) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *failFlush) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (h *failFlush) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if args := cmd.Args(); len(args) > 3 && strings.HasSuffix(fmt.Sprint(args[3]), ":evictions") &&
			(h.on.Load() || h.times.Add(-1) >= 0) {
			err := errors.New("connection lost")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// TestFailedFlushIsRetried: a flush that fails (a failover ending, say) is tried again after
// twice the window, not left to the sweep a second later.
func TestFailedFlushIsRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		client := redistest.Client(t, m)
		var flaky failFlush
		client.AddHook(&flaky)
		writer, err := stampede.New[string](client, stampede.WithL1(100, time.Hour))
		require.NoError(t, err)
		defer writer.Close()
		readers := fleet[string](t, m, 2, stampede.WithL1(100, time.Hour))
		warm(t, readers, []string{"k"})

		flaky.times.Store(1)
		start := time.Now()
		require.NoError(t, writer.Set(ctx, "k", "v2"))
		afterWindow()
		require.True(t, stampede.InL1(readers[0], "k"), "the first flush failed")
		time.Sleep(2 * stampede.DefaultEvictionWindow)
		synctest.Wait()
		for _, c := range readers {
			require.False(t, stampede.InL1(c, "k"), "the flush, tried again, evicted it")
		}
		require.Less(t, time.Since(start), stampede.EvictionSweepEvery, "before any sweep")
	})
}

// TestLostFlusher: when the instance that opened a window never flushes it, the evictions are
// not lost: another instance's sweep flushes the buffer once it is overdue.
func TestLostFlusher(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		client := redistest.Client(t, m)
		var lost failFlush
		client.AddHook(&lost)
		writer, err := stampede.New[string](client, stampede.WithL1(100, time.Hour))
		require.NoError(t, err)
		defer writer.Close()
		readers := fleet[string](t, m, 2, stampede.WithL1(100, time.Hour))
		warm(t, readers, []string{"k"})

		lost.on.Store(true)
		require.NoError(t, writer.Set(ctx, "k", "v2"))
		time.Sleep(stampede.DefaultEvictionWindow)
		synctest.Wait()
		require.True(t, stampede.InL1(readers[0], "k"), "the flush was lost")
		time.Sleep(2 * stampede.EvictionSweepEvery) // a sweep finds the buffer overdue
		synctest.Wait()
		for _, c := range readers {
			require.False(t, stampede.InL1(c, "k"), "a sweep flushed the lost window")
		}
	})
}

// TestLostStripeSubscriptionClearsL1: losing the subscription to an eviction stripe clears the
// L1 (evictions may be lost meanwhile), which keeps entries briefly until it is back.
func TestLostStripeSubscriptionClearsL1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t), stampede.WithL1(100, time.Hour))
		warm(t, []*stampede.Cache[string]{c}, []string{"k"})
		require.True(t, stampede.DropStripeSubscription(c))
		synctest.Wait()
		require.False(t, stampede.InL1(c, "k"), "the L1 was cleared")
		time.Sleep(time.Second) // the notifier subscribes again, after its back-off
		synctest.Wait()
		require.True(t, stampede.Subscribed(c))
	})
}

// TestWaitersAreNotDelayed: a caller waiting for another instance's load gets the value when
// the fill lands, not when the eviction window ends.
func TestWaitersAreNotDelayed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 2, stampede.WithL1(100, time.Hour))
		src := newSource("v")
		started, release := src.hold()
		go func() { _, _ = caches[0].Get(ctx, "k", src.load) }()
		<-started
		done := make(chan time.Time)
		go func() {
			v, err := caches[1].Get(ctx, "k", src.load)
			require.NoError(t, err)
			require.Equal(t, "v", v)
			done <- time.Now()
		}()
		time.Sleep(30 * time.Millisecond) // the waiter waits, between two polls
		releasedAt := time.Now()
		release()
		require.Zero(t, (<-done).Sub(releasedAt), "the fill's message woke the waiter at once")
		require.EqualValues(t, 1, src.calls.Load())
	})
}
