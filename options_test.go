package stampede_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// TestPolicyZeroFieldsTakeDefaults: a Policy from WithPolicy's function follows the same
// convention as HotKeys: a zero field takes its default (here, negative caching for 10 s), and
// a negative one turns the feature off.
func TestPolicyZeroFieldsTakeDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t), stampede.WithPolicy(func(key string) stampede.Policy {
			if key == "off" {
				return stampede.Policy{TTL: time.Minute, NegativeTTL: -1}
			}
			return stampede.Policy{TTL: time.Minute}
		}))
		for _, tc := range []struct {
			key   string
			loads int64
		}{{"default", 1}, {"off", 3}} {
			src := newSource("")
			src.fail(stampede.ErrNotFound)
			for range 3 {
				_, err := c.Get(ctx, tc.key, src.load)
				require.ErrorIs(t, err, stampede.ErrNotFound)
				synctest.Wait()
			}
			require.Equal(t, tc.loads, src.calls.Load(), "key %q", tc.key)
		}
	})
}

// TestNegativeOptionTurnsOff: a policy option given a negative duration turns its feature
// off, as zero does, rather than failing New.
func TestNegativeOptionTurnsOff(t *testing.T) {
	m := redistest.Mini(t)
	_, err := stampede.New[string](redistest.Client(t, m), stampede.WithStaleWhileRevalidate(-1),
		stampede.WithStaleIfError(-time.Second), stampede.WithNegativeTTL(-1), stampede.WithEarlyRefresh(-1))
	require.NoError(t, err)
}

// TestRefreshTakesCallOptions: Refresh writes under the TTL its call gives.
func TestRefreshTakesCallOptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithTTL(time.Hour), stampede.WithEarlyRefresh(0), stampede.WithJitter(0))
		src := newSource("v1")
		_, err := c.Refresh(ctx, "k", src.load, stampede.WithTTL(time.Second), stampede.WithoutL1())
		require.NoError(t, err)
		ttl := m.TTL(stampede.ValueKey(c, "k"))
		require.Positive(t, ttl)
		require.LessOrEqual(t, ttl, time.Second, "the call's TTL, not the cache's hour")
		time.Sleep(2 * time.Second) // the fake clock: the value expires
		src.value.Store("v2")
		v, err := c.Get(context.Background(), "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v2", v)
	})
}

// TestStatsReportTheL1: Stats reports the L1's entries and estimated bytes, bounded by
// WithL1Bytes.
func TestStatsReportTheL1(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t), stampede.WithL1Bytes(64<<10))
		big := strings.Repeat("x", 4000)
		for i := range 100 {
			require.NoError(t, c.Set(ctx, fmt.Sprint("k", i), big))
		}
		synctest.Wait()
		s := c.Stats()
		require.Positive(t, s.L1Entries)
		require.Less(t, s.L1Entries, uint64(100), "100 values of 4 KB do not fit in 64 KiB")
		require.LessOrEqual(t, s.L1Bytes, uint64(64<<10))
		require.Greater(t, s.L1Bytes, uint64(4000))
	})
}
