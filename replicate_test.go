package stampede_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/redistest"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// replicasOf returns the envelopes stored in key's n replicas ("" for a missing one).
func replicasOf(m *miniredis.Miniredis, key string, n int) []string {
	var got []string
	for _, rk := range scripts.ReplicaKeys("stampede", key, n) {
		v, _ := m.Get(rk)
		got = append(got, v)
	}
	return got
}

func TestReplicasCopyEachWrite(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithoutL1(), stampede.WithReplicas(3), stampede.WithReplicaTTL(time.Second))
		src := newSource("v1")
		_, err := c.Get(ctx, "hot", src.load)
		require.NoError(t, err)
		primary, _ := m.Get("stampede:{hot}")
		for i, rk := range scripts.ReplicaKeys("stampede", "hot", 3) {
			got, err := m.Get(rk)
			require.NoError(t, err, "replica %d", i)
			require.Equal(t, primary, got, "a replica holds the primary's envelope, generation included")
			require.LessOrEqual(t, m.TTL(rk), time.Second)
		}

		for range 30 {
			v, err := c.Get(ctx, "hot", src.load)
			require.NoError(t, err)
			require.Equal(t, "v1", v)
		}
		require.EqualValues(t, 30, c.Stats().ReplicaHits)
		require.EqualValues(t, 1, src.calls.Load())

		require.NoError(t, c.Set(ctx, "hot", "v2"))
		primary, _ = m.Get("stampede:{hot}")
		for _, got := range replicasOf(m, "hot", 3) {
			require.Equal(t, primary, got, "Set writes the replicas through")
		}
		for _, write := range []func() error{
			func() error { return c.Invalidate(ctx, "hot") },
			func() error { return c.Delete(ctx, "hot") },
		} {
			_, err = c.Get(ctx, "hot", src.load)
			require.NoError(t, err)
			synctest.Wait() // a copy to a replica that missed is written in the background
			require.NoError(t, write())
			for _, got := range replicasOf(m, "hot", 3) {
				require.Empty(t, got, "the write removed the replicas")
			}
		}
	})
}

// TestReplicaMissReadsThePrimary: a replica that expired sends its reader to the primary (not to
// the loader), which copies the primary to that replica.
func TestReplicaMissReadsThePrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithoutL1(), stampede.WithReplicas(2), stampede.WithReplicaTTL(time.Second),
			stampede.WithTTL(time.Hour))
		src := newSource("v")
		_, err := c.Get(ctx, "k", src.load)
		require.NoError(t, err)
		time.Sleep(time.Second) // the replicas expire; the primary does not
		require.Equal(t, []string{"", ""}, replicasOf(m, "k", 2))
		v, err := c.Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v", v)
		require.EqualValues(t, 1, src.calls.Load())
		synctest.Wait()
		copied := 0
		for _, got := range replicasOf(m, "k", 2) {
			if got != "" {
				copied++
				h, _, err := envelope.ParseString(got)
				require.NoError(t, err)
				require.NotZero(t, h.Gen)
			}
		}
		require.Equal(t, 1, copied, "the replica that missed got the primary's copy")
		s := c.Stats()
		require.EqualValues(t, 2, s.ReplicaMisses, "the first Get, before any fill, and the one after expiry")
		require.EqualValues(t, 0, s.ReplicaHits)
	})
}

// TestHotKeysAreReplicated: with HotKeys.Replicas, a key that turns hot is served from replicas
// from the next window on, and no longer once it cools.
func TestHotKeysAreReplicated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var events []int
		c := one[string](t, redistest.Mini(t), stampede.WithoutL1(), stampede.WithTTL(time.Hour),
			stampede.WithHotKeys(stampede.HotKeys{Threshold: 100, SampleRate: 1, Replicas: 3}),
			stampede.WithHooks(stampede.Hooks{OnReplicated: func(key string, n int) {
				mu.Lock()
				events = append(events, n)
				mu.Unlock()
			}}))
		src := newSource("v")
		read := func(n int) stampede.Stats {
			before := c.Stats()
			end := time.Now().Add(time.Second)
			for range n {
				_, err := c.Get(ctx, "hot", src.load)
				require.NoError(t, err)
				time.Sleep(time.Second / time.Duration(n))
			}
			time.Sleep(time.Until(end))
			synctest.Wait()
			after := c.Stats()
			return stampede.Stats{ReplicaHits: after.ReplicaHits - before.ReplicaHits, ReplicaMisses: after.ReplicaMisses - before.ReplicaMisses}
		}
		first := read(300)
		require.Zero(t, first.ReplicaHits+first.ReplicaMisses, "not replicated before it is seen hot")
		require.Equal(t, stampede.HotKey{Key: "hot", Rate: 300, Replicas: 3}, c.HotKeys()[0])
		s := read(300)
		require.Greater(t, s.ReplicaHits, uint64(250), "replicas serve it; each missed once first")
		require.LessOrEqual(t, s.ReplicaMisses, uint64(3))
		read(10) // cold: no longer replicated
		require.Zero(t, read(10).ReplicaHits)
		require.Equal(t, []int{3, 0}, events)
		require.EqualValues(t, 1, src.calls.Load())
	})
}
