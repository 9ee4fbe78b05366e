package stampede

import (
	"fmt"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/coarse"
	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/scripts"
)

func newTestL1(t *testing.T) *l1[string] {
	t.Helper()
	clock := coarse.New(time.Millisecond)
	t.Cleanup(clock.Stop)
	l, err := newL1[string](100, 0, time.Hour, time.Second, clock, slog.New(slog.DiscardHandler), false)
	require.NoError(t, err)
	t.Cleanup(l.close)
	return l
}

func entry(v string, gen uint64) l1Entry[string] {
	return l1Entry[string]{value: v, h: envelope.Header{Gen: gen, FreshUntil: time.Now().Add(time.Hour).UnixNano()}}
}

func held(l *l1[string], key string) (string, bool) {
	e, _, ok := l.get(key)
	if !ok {
		return "", false
	}
	return e.value, true
}

// TestL1GenerationFloor: a read that began before an eviction cannot store what the eviction
// replaced, whichever order the eviction and the reply arrive in; a newer one can.
func TestL1GenerationFloor(t *testing.T) {
	l := newTestL1(t)
	until := time.Now().Add(time.Hour).UnixNano()

	since := l.mark()
	l.evict("k", 6)                                        // the write's message comes first
	l.store("k", entry("old", 5), since, until, time.Hour) // then the read's reply
	_, ok := held(l, "k")
	require.False(t, ok, "an older generation than the floor is refused")
	l.store("k", entry("new", 6), since, until, time.Hour) // the write's own value
	v, ok := held(l, "k")
	require.True(t, ok)
	require.Equal(t, "new", v)

	l.evict("k", 6) // its own message, after its reply: nothing to do
	v, _ = held(l, "k")
	require.Equal(t, "new", v)

	// A value of unknown generation (loaded while Redis failed) whose load began before an
	// eviction is refused; one that began after it is kept.
	since = l.mark()
	l.evict("k", 7)
	l.store("k", entry("loaded", 0), since, until, time.Hour)
	_, ok = held(l, "k")
	require.False(t, ok)
	l.store("k", entry("loaded", 0), l.mark(), until, time.Hour)
	v, _ = held(l, "k")
	require.Equal(t, "loaded", v)
	l.evict("k", 8) // any message evicts it
	_, ok = held(l, "k")
	require.False(t, ok)

	// An eviction of unknown generation (a write whose reply was lost) refuses every read that
	// began before it.
	since = l.mark()
	l.evict("k", 0)
	l.store("k", entry("any", 9), since, until, time.Hour)
	_, ok = held(l, "k")
	require.False(t, ok)

	// Clearing refuses every read that began before it.
	since = l.mark()
	l.clear()
	l.store("other", entry("x", 1), since, until, time.Hour)
	_, ok = held(l, "other")
	require.False(t, ok)
}

// TestL1BoundedInBytes: with WithL1Bytes, the L1 holds what fits in its bytes, whatever the
// number of entries, and Stats reports its entries and estimated bytes.
func TestL1BoundedInBytes(t *testing.T) {
	clock := coarse.New(time.Millisecond)
	t.Cleanup(clock.Stop)
	const limit = 100_000
	l, err := newL1[string](1, limit, time.Hour, time.Second, clock, slog.New(slog.DiscardHandler), false)
	require.NoError(t, err)
	t.Cleanup(l.close)
	now := clock.NowNano()
	h := envelope.Header{Gen: 1, WrittenAt: now, FreshUntil: now + int64(time.Hour)}
	for i := range 2000 {
		l.store(fmt.Sprint("k", i), l1Entry[string]{value: "v", h: h, size: 1000}, l.mark(), h.FreshUntil, time.Hour)
	}
	l.cache.CleanUp()
	entries, bytes := l.size()
	require.LessOrEqual(t, bytes, int64(limit))
	require.Greater(t, bytes, int64(limit/2), "it holds what fits")
	require.InDelta(t, 1000+200+5, float64(bytes)/float64(entries), 10, "about 1.2 KB per entry")
	require.Greater(t, entries, 1, "bounded by bytes, not by WithL1's size")
}

// TestL1HashIndex: a coalesced eviction finds the keys of its hash, even one stored over an
// expired entry (otter reports that entry's deletion after the write that replaced it); for a
// key the L1 does not hold, it lays a floor that refuses a read that began before it.
func TestL1HashIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := coarse.New(time.Millisecond)
		t.Cleanup(clock.Stop)
		l, err := newL1[string](100, 0, time.Hour, time.Second, clock, slog.New(slog.DiscardHandler), true)
		require.NoError(t, err)
		t.Cleanup(l.close)
		hash := scripts.KeyHash
		until := time.Now().Add(time.Hour).UnixNano()

		l.store("k", entry("v1", 5), l.mark(), until, time.Millisecond)
		time.Sleep(5 * time.Millisecond) // expired, not yet removed (fake time)
		l.store("k", entry("v2", 6), l.mark(), until, time.Hour)
		require.Equal(t, []string{"k"}, l.evictHash(hash("k"), 7), "the index still has k")
		_, ok := held(l, "k")
		require.False(t, ok)

		since := l.mark()
		require.Empty(t, l.evictHash(hash("new"), 9))
		l.store("new", entry("old", 8), since, until, time.Hour)
		_, ok = held(l, "new")
		require.False(t, ok, "the hash's floor refuses an older generation")
		l.store("new", entry("current", 9), since, until, time.Hour)
		v, ok := held(l, "new")
		require.True(t, ok)
		require.Equal(t, "current", v)
	})
}
