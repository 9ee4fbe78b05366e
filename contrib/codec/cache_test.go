package stampedecodec_test

import (
	"context"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	stampedecodec "github.com/stampede-cache/stampede/contrib/codec"
)

// newCache starts a cache without L1 on m, so that every Get after the first decodes from Redis.
func newCache(t *testing.T, m *miniredis.Miniredis, codec stampede.Codec) *stampede.Cache[profile] {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = rdb.Close() })
	c, err := stampede.New[profile](rdb, stampede.WithCodec(codec), stampede.WithoutL1())
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// TestCache uses the codecs as a Cache does (Marshal of a V, Unmarshal into a *V), through Redis,
// and wraps a codec while Redis holds what the bare codec wrote.
func TestCache(t *testing.T) {
	ctx := context.Background()
	m := miniredis.RunT(t)
	want := profileValue()
	loads := 0
	load := func(ctx context.Context, key string) (profile, error) {
		loads++
		return want, nil
	}

	bare := newCache(t, m, stampedecodec.Msgpack{})
	got, err := bare.Get(ctx, "celeb", load)
	require.NoError(t, err)
	require.Equal(t, want, got)
	got, err = bare.Get(ctx, "celeb", load)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, 1, loads)

	wrapped := newCache(t, m, stampedecodec.Compress(stampedecodec.Msgpack{}, stampedecodec.DefaultThreshold))
	got, err = wrapped.Get(ctx, "celeb", load)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, 1, loads, "the wrapped codec reads what the bare one wrote")
	require.Zero(t, wrapped.Stats().CodecErrors)

	require.NoError(t, wrapped.Set(ctx, "celeb", want))
	stored, err := m.Get("stampede:{celeb}")
	require.NoError(t, err)
	raw, err := stampedecodec.Msgpack{}.Marshal(want)
	require.NoError(t, err)
	require.Less(t, len(stored), len(raw)*3/4, "Redis holds the compressed value")
	got, err = wrapped.Get(ctx, "celeb", load)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, 1, loads)
}
