package stampede_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// TestPeek: Peek serves what Get would serve without loading, from the L1 or Redis, fresh or
// stale within the stale-while-revalidate window, and never loads or refreshes.
func TestPeek(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 2, stampede.WithTTL(time.Second), stampede.WithJitter(0),
			stampede.WithStaleWhileRevalidate(time.Second), stampede.WithEarlyRefresh(0))
		a, b := caches[0], caches[1]
		_, found, err := a.Peek(ctx, "k")
		require.NoError(t, err)
		require.False(t, found, "a miss")

		src := newSource("v1")
		_, err = a.Get(ctx, "k", src.load)
		require.NoError(t, err)
		for name, c := range map[string]*stampede.Cache[string]{"L1": a, "Redis": b} {
			v, found, err := c.Peek(ctx, "k")
			require.NoError(t, err, name)
			require.True(t, found, name)
			require.Equal(t, "v1", v, name)
		}

		time.Sleep(1500 * time.Millisecond) // expired, within the stale window
		v, found, err := b.Peek(ctx, "k")
		require.NoError(t, err)
		require.True(t, found)
		require.Equal(t, "v1", v, "stale, as Get would serve it")
		synctest.Wait()
		require.EqualValues(t, 1, src.calls.Load(), "Peek started no refresh")
		require.Zero(t, b.Stats().Gets, "Peek is not counted as a Get")

		time.Sleep(time.Second) // past the stale window
		_, found, err = a.Peek(ctx, "k")
		require.NoError(t, err)
		require.False(t, found)

		// A cached not-found is not found.
		missing := func(context.Context, string) (string, error) { return "", stampede.ErrNotFound }
		_, err = a.Get(ctx, "gone", missing)
		require.ErrorIs(t, err, stampede.ErrNotFound)
		_, found, err = b.Peek(ctx, "gone")
		require.NoError(t, err)
		require.False(t, found)
		require.EqualValues(t, 1, src.calls.Load())
	})
}

// TestPeekRedisDown: Peek reports a Redis failure rather than loading.
func TestPeekRedisDown(t *testing.T) {
	m := redistest.Mini(t)
	c := one[string](t, m, stampede.WithoutL1())
	m.SetError("down")
	_, found, err := c.Peek(ctx, "k")
	require.Error(t, err)
	require.False(t, found)
	_, _, err = c.Peek(ctx, "")
	require.ErrorIs(t, err, stampede.ErrInvalidKey)
}
