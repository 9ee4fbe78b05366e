package stampede_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// Two shapes of one record, before and after a deploy that renamed a field.
type profileV1 struct{ Name string }
type profileV2 struct{ FullName string }

// TestVersionsShareANamespace: two fleets with different shapes of V, tagged with
// WithVersion, share one namespace through a rolling deploy. Neither ever decodes the other's
// values into its shape; they never overwrite each other's fresh values in a loop (the version
// that does not hold the key in Redis loads it once per instance per L1 TTL); and a write
// through either reaches both.
func TestVersionsShareANamespace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		opts := []stampede.Option{stampede.WithTTL(time.Hour), stampede.WithL1(100, 10*time.Second),
			stampede.WithEarlyRefresh(0), stampede.WithNamespace("profiles")}
		old := fleet[profileV1](t, m, 2, append(opts, stampede.WithVersion("1"))...)
		cur := fleet[profileV2](t, m, 2, append(opts, stampede.WithVersion("2"))...)
		var loads1, loads2 atomic.Int64
		load1 := func(context.Context, string) (profileV1, error) { loads1.Add(1); return profileV1{Name: "Ada"}, nil }
		load2 := func(context.Context, string) (profileV2, error) {
			loads2.Add(1)
			return profileV2{FullName: "Ada"}, nil
		}

		// 100 s (ten L1 TTLs) of reads from both fleets, alternating, every second. (Fake time
		// costs each instance its background work every second: the test keeps it short.)
		for range 100 {
			for _, c := range old {
				p, err := c.Get(ctx, "u1", load1)
				require.NoError(t, err)
				require.Equal(t, "Ada", p.Name, "never a v2 value in the v1 shape")
			}
			for _, c := range cur {
				p, err := c.Get(ctx, "u1", load2)
				require.NoError(t, err)
				require.Equal(t, "Ada", p.FullName, "never a v1 value in the v2 shape")
			}
			time.Sleep(time.Second)
		}
		// v1 loaded first and holds the key in Redis: one load. Each v2 instance loads it for
		// its own L1, once per L1 TTL: 2 instances x 10 TTLs.
		require.EqualValues(t, 1, loads1.Load())
		require.LessOrEqual(t, loads2.Load(), int64(2*10+2))
		t.Logf("loads over ten L1 TTLs: v1 %d, v2 %d", loads1.Load(), loads2.Load())

		// A write through the new version reaches the old one's instances.
		require.NoError(t, cur[0].Set(ctx, "u1", profileV2{FullName: "Ada Lovelace"}))
		synctest.Wait()
		before := loads1.Load()
		p, err := old[1].Get(ctx, "u1", func(context.Context, string) (profileV1, error) {
			loads1.Add(1)
			return profileV1{Name: "Ada Lovelace"}, nil
		})
		require.NoError(t, err)
		require.Equal(t, "Ada Lovelace", p.Name)
		require.Equal(t, before+1, loads1.Load(), "the old version loads for itself, leaving v2's value")
		p2, err := cur[1].Get(ctx, "u1", load2)
		require.NoError(t, err)
		require.Equal(t, "Ada Lovelace", p2.FullName)
	})
}

// TestUnversionedValuesAreAnotherVersion: a deploy that adopts WithVersion does not decode
// the values written before it.
func TestUnversionedValuesAreAnotherVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		before := one[profileV1](t, m)
		require.NoError(t, before.Set(ctx, "u1", profileV1{Name: "Ada"}))
		after := one[profileV2](t, m, stampede.WithVersion("2"))
		p, err := after.Get(ctx, "u1", func(context.Context, string) (profileV2, error) {
			return profileV2{FullName: "Ada"}, nil
		})
		require.NoError(t, err)
		require.Equal(t, "Ada", p.FullName)
		require.Zero(t, after.Stats().CodecErrors)
	})
}
