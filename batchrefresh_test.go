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

// TestGetManyHotBatchAcrossExpiry: 100 keys with a 1 s TTL read together 100 times a second for
// 5 s (fake time) by 2 instances, early refresh on: no read ever waits for a load, and the
// refreshes are merged into at most (5 s / 1 s) x ceil(100/100) x 1.2 = 6 BatchLoader calls.
func TestGetManyHotBatchAcrossExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 2, stampede.WithTTL(time.Second),
			stampede.WithRefreshBatch(20*time.Millisecond, 100))
		src := newBatchSource()
		slow := func(ctx context.Context, keys []string) (map[string]string, error) {
			time.Sleep(5 * time.Millisecond) // a query's time, XFetch's delta
			return src.load(ctx, keys)
		}
		keys := keysN("hot", 100)
		_, err := caches[0].GetMany(ctx, keys, slow)
		require.NoError(t, err)
		misses := caches[0].Stats().Misses + caches[1].Stats().Misses
		for i := range 500 {
			got, err := caches[i%2].GetMany(ctx, keys, slow)
			require.NoError(t, err)
			require.Len(t, got, 100)
			time.Sleep(10 * time.Millisecond)
		}
		synctest.Wait()
		require.Equal(t, misses, caches[0].Stats().Misses+caches[1].Stats().Misses, "no read waited for a load")
		calls, _ := src.stats()
		t.Logf("%d refresh calls in 5 s", calls-1)
		require.LessOrEqual(t, calls-1, 6)
		require.GreaterOrEqual(t, calls-1, 4, "the keys were refreshed")
	})
}

// TestGetManyPerKeyReports: each key of a batch load gets its own load span, OnLoad and Loads,
// and a lease wait its own lease_wait span and OnLeaseWait.
func TestGetManyPerKeyReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		tr := &fakeTracer{}
		var mu sync.Mutex
		loads := map[string]int{}
		hooks := stampede.Hooks{OnLoad: func(key string, _ time.Duration, _ error) {
			mu.Lock()
			loads[key]++
			mu.Unlock()
		}}
		c := one[string](t, m, stampede.WithTracer(tr), stampede.WithHooks(hooks))
		src := newBatchSource()
		src.missing["b"] = true
		_, err := c.GetMany(ctx, []string{"a", "b", "c"}, src.load)
		require.NoError(t, err)
		require.Equal(t, map[string]int{"a": 1, "b": 1, "c": 1}, loads)
		require.EqualValues(t, 3, c.Stats().Loads)
		names, spans := tr.take(t)
		var loaded []string
		for i, s := range spans {
			if s.Op == stampede.SpanLoad {
				loaded = append(loaded, s.Key)
				if s.Key == "b" {
					require.ErrorIs(t, s.err, stampede.ErrNotFound)
				}
			}
			_ = names[i]
		}
		require.ElementsMatch(t, []string{"a", "b", "c"}, loaded)
	})
}

type shapeA struct{ Name string }
type shapeB struct{ FullName string }

// TestGetManyForeignVersion: a GetMany of another schema version's fresh values loads them for
// its L1 only and leaves Redis alone.
func TestGetManyForeignVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		a := one[shapeA](t, m, stampede.WithVersion("1"))
		b := one[shapeB](t, m, stampede.WithVersion("2"))
		_, err := a.GetMany(ctx, []string{"u1", "u2"}, func(_ context.Context, keys []string) (map[string]shapeA, error) {
			return map[string]shapeA{"u1": {"Ada"}, "u2": {"Bob"}}, nil
		})
		require.NoError(t, err)
		before, _ := m.Get("stampede:{u1}")
		got, err := b.GetMany(ctx, []string{"u1", "u2"}, func(_ context.Context, keys []string) (map[string]shapeB, error) {
			return map[string]shapeB{"u1": {"Ada L."}, "u2": {"Bob L."}}, nil
		})
		require.NoError(t, err)
		require.Equal(t, "Ada L.", got["u1"].FullName)
		after, _ := m.Get("stampede:{u1}")
		require.Equal(t, before, after, "the other version's fresh value is left alone")
		v, err := a.Get(ctx, "u1", func(context.Context, string) (shapeA, error) { return shapeA{}, nil })
		require.NoError(t, err)
		require.Equal(t, "Ada", v.Name)
	})
}
