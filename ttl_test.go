package stampede_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// TestSetTTLChoosesTheValueTTL: a loader's SetTTL replaces the policy's TTL for its value, in
// Redis and in the L1, and the value is loaded again once that TTL has passed.
func TestSetTTLChoosesTheValueTTL(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithTTL(time.Hour), stampede.WithEarlyRefresh(0), stampede.WithJitter(0.2))
		calls := 0
		load := func(ctx context.Context, key string) (string, error) {
			calls++
			stampede.SetTTL(ctx, 5*time.Second)
			return "v", nil
		}
		_, err := c.Get(ctx, "k", load)
		require.NoError(t, err)
		ttl := m.TTL(stampede.ValueKey(c, "k"))
		require.Positive(t, ttl)
		require.LessOrEqual(t, ttl, 5*time.Second, "the jittered chosen TTL, not the hour")
		_, err = c.Get(ctx, "k", load)
		require.NoError(t, err)
		require.Equal(t, 1, calls)
		time.Sleep(6 * time.Second)
		_, err = c.Get(ctx, "k", load)
		require.NoError(t, err)
		require.Equal(t, 2, calls, "expired after the chosen TTL")
	})
}

// TestSetTTLZeroDoesNotCache: with SetTTL(ctx, 0) the callers that share the load get the
// value, and nothing is cached: the next Get loads again. A burst costs at most two loads: the
// one running, and the one the callers that came meanwhile board (as for any flight).
func TestSetTTLZeroDoesNotCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m)
		var mu sync.Mutex
		calls := 0
		gate := make(chan struct{})
		load := func(ctx context.Context, key string) (string, error) {
			mu.Lock()
			calls++
			mu.Unlock()
			<-gate
			stampede.SetTTL(ctx, 0)
			return "secret", nil
		}
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				v, err := c.Get(ctx, "k", load)
				require.NoError(t, err)
				require.Equal(t, "secret", v)
			})
		}
		synctest.Wait()
		close(gate)
		wg.Wait()
		require.Equal(t, 2, calls, "the callers shared the running load and the next")
		calls = 0
		require.False(t, m.Exists(stampede.ValueKey(c, "k")), "not written to Redis")
		require.False(t, stampede.InL1(c, "k"), "not kept in the L1")
		_, err := c.Get(ctx, "k", load)
		require.NoError(t, err)
		require.Equal(t, 1, calls)
	})
}

// TestSetTTLOnNotFound: a loader that returns ErrNotFound chooses the not-found entry's TTL,
// even where the policy caches no not-found.
func TestSetTTLOnNotFound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t), stampede.WithNegativeTTL(0), stampede.WithJitter(0))
		calls := 0
		load := func(ctx context.Context, key string) (string, error) {
			calls++
			stampede.SetTTL(ctx, 2*time.Second)
			return "", stampede.ErrNotFound
		}
		for range 3 {
			_, err := c.Get(ctx, "k", load)
			require.ErrorIs(t, err, stampede.ErrNotFound)
		}
		require.Equal(t, 1, calls)
		time.Sleep(3 * time.Second)
		_, err := c.Get(ctx, "k", load)
		require.ErrorIs(t, err, stampede.ErrNotFound)
		require.Equal(t, 2, calls)
	})
}

// TestSetTTLOutsideALoader does nothing.
func TestSetTTLOutsideALoader(t *testing.T) {
	require.NotPanics(t, func() { stampede.SetTTL(context.Background(), time.Second) })
}
