package flight

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func spawn(f func()) bool { go f(); return true }

// TestCallersGetACallThatStartedAfterThem is the property the package exists for: each call
// returns the time it started, and every caller gets a time after its own arrival.
func TestCallersGetACallThatStartedAfterThem(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := New(spawn, time.Time{})
		var calls atomic.Int64
		started := func() time.Time {
			calls.Add(1)
			at := time.Now()
			time.Sleep(10 * time.Millisecond)
			return at
		}
		var wg sync.WaitGroup
		for i := range 1000 {
			wg.Go(func() {
				time.Sleep(time.Duration(i%50) * time.Millisecond / 2) // arrivals over 25 ms
				arrived := time.Now()
				got, err := g.Board(context.Background(), "k", started, i%2 == 0)
				require.NoError(t, err)
				require.False(t, got.Before(arrived), "caller arrived at %v, got a call started at %v", arrived, got)
			})
		}
		wg.Wait()
		// One call running and one boarding at any time: about one call per 10 ms.
		require.LessOrEqual(t, calls.Load(), int64(5))
	})
}

func TestLeadEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := New(spawn, "closed")
		l, ok := g.Lead("k")
		require.True(t, ok)
		_, ok = g.Lead("k")
		require.False(t, ok, "a call is running")

		got := make(chan string)
		for range 3 {
			go func() {
				v, err := g.Board(context.Background(), "k", func() string { return "next" }, true)
				require.NoError(t, err)
				got <- v
			}()
		}
		synctest.Wait()
		g.End(l)
		for range 3 {
			require.Equal(t, "next", <-got)
		}
		synctest.Wait()
		l, ok = g.Lead("k")
		require.True(t, ok, "the key is free once no call runs")
		g.End(l)
	})
}

func TestLeadEndDoesNotAllocate(t *testing.T) {
	g := New(spawn, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		l, _ := g.Lead("user:42")
		g.End(l)
	})
	require.Zero(t, allocs)
}

func TestWaiterContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := New(spawn, "closed")
		release := make(chan struct{})
		done := make(chan string)
		go func() {
			v, _ := g.Board(context.Background(), "k", func() string { <-release; return "v" }, false)
			done <- v
		}()
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := g.Board(ctx, "k", func() string { return "unused" }, false)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		close(release)
		require.Equal(t, "v", <-done)
	})
}

func TestClosedSpawnEndsBoardedCalls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var closing atomic.Bool
		g := New(func(f func()) bool {
			if closing.Load() {
				return false
			}
			go f()
			return true
		}, "closed")
		l, _ := g.Lead("k")
		got := make(chan string)
		go func() {
			v, _ := g.Board(context.Background(), "k", func() string { return "never" }, false)
			got <- v
		}()
		synctest.Wait()
		closing.Store(true)
		g.End(l)
		require.Equal(t, "closed", <-got)
		v, err := g.Board(context.Background(), "k", func() string { return "never" }, false)
		require.NoError(t, err)
		require.Equal(t, "closed", v)
	})
}

func TestNoGoroutineLeft(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := New(spawn, 0)
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			_, _ = g.Board(context.Background(), "k", func() int { time.Sleep(time.Millisecond); return 1 }, false)
		})
	}
	wg.Wait()
}
