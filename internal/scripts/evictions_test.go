package scripts

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// TestEvictionsCoalesce: writes through a buffered route append to the stripe's buffer, only
// the first is told it opened the window, and one flush publishes every key once, at its newest
// generation, in a message that parses back; an empty buffer publishes nothing.
func TestEvictionsCoalesce(t *testing.T) {
	backends(t, func(t *testing.T, c *redis.Client, ns string) {
		ctx := context.Background()
		s := Stripes(ns, 1)[0]
		ps := c.Subscribe(ctx, s.Channel)
		defer ps.Close()
		_, err := ps.Receive(ctx)
		require.NoError(t, err)

		gens := map[uint64]uint64{}
		for i, key := range []string{"a", "b", "a", "c"} {
			k := KeysFor(ns, key)
			w, err := Set(ctx, c, Ack{}, k, env(t, `"v"`), time.Minute, genTTL, Route(Channel(ns), &s, key), key)
			require.NoError(t, err)
			require.Equal(t, i == 0, w.Opened, "write %d opened the window", i)
			gens[KeyHash(key)] = w.Gen
		}
		// Fill and Delete append too.
		w, err := Delete(ctx, c, Ack{}, KeysFor(ns, "d"), genTTL, Route(Channel(ns), &s, "d"), "d")
		require.NoError(t, err)
		require.False(t, w.Opened)
		gens[KeyHash("d")] = w.Gen

		n, err := FlushEvictions(ctx, c, s, false, time.Minute)
		require.NoError(t, err)
		require.Equal(t, -1, n, "a young buffer is left to its flusher")
		n, err = FlushEvictions(ctx, c, s, false, 0)
		require.NoError(t, err)
		require.Equal(t, 4, n, "one record per key")
		msg, err := ps.ReceiveMessage(ctx)
		require.NoError(t, err)
		require.Less(t, len(msg.Payload), 1+8+4*(HashBytes+9), "a few bytes per key")
		evs, err := ParseEvictions(nil, msg.Payload)
		require.NoError(t, err)
		got := map[uint64]uint64{}
		for _, e := range evs {
			got[e.Hash] = e.Gen
		}
		require.Equal(t, gens, got, "each key at its newest generation")

		n, err = FlushEvictions(ctx, c, s, false, 0)
		require.NoError(t, err)
		require.Zero(t, n, "nothing left")
		w, err = Invalidate(ctx, c, Ack{}, KeysFor(ns, "a"), genTTL, Route(Channel(ns), &s, "a"), "a")
		require.NoError(t, err)
		require.True(t, w.Opened, "the next write opens the next window")
	})
}

// TestParseEvictions: generations above the flush's clock (a fence that outran it) decode too,
// and truncated messages are errors.
func TestParseEvictions(t *testing.T) {
	msg := []byte{'b', 0, 0, 0, 0, 0, 0, 0, 100}
	msg = append(msg, 1, 2, 3, 4, 5, 6, 1)          // zigzag 1: gen 101
	msg = append(msg, 0, 0, 0, 0, 0, 7, 0x90, 0x01) // zigzag 144: gen 28
	evs, err := ParseEvictions(nil, string(msg))
	require.NoError(t, err)
	require.Equal(t, []Eviction{{Hash: 0x010203040506, Gen: 101}, {Hash: 7, Gen: 28}}, evs)
	for i := 1; i < len(msg); i++ {
		if i == 9 || i == 16 {
			continue // whole records
		}
		_, err := ParseEvictions(nil, string(msg[:i]))
		require.Error(t, err, "%d bytes", i)
	}
}
