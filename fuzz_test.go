package stampede_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// The fuzz tests' seed corpora are in testdata/fuzz; `go test` runs them, and
// `go test -fuzz FuzzKey -run '^$'` looks for more.

// FuzzKey: any key Get accepts round-trips through Redis to another instance unchanged, and
// any key it refuses is refused with ErrInvalidKey, before Redis or the loader is called.
func FuzzKey(f *testing.F) {
	f.Add("user:1")
	f.Add("}{")
	m := miniredis.RunT(f)
	writer, err := stampede.New[string](redistest.Client(f, m), stampede.WithoutL1())
	require.NoError(f, err)
	reader, err := stampede.New[string](redistest.Client(f, m), stampede.WithoutL1())
	require.NoError(f, err)
	f.Cleanup(func() { writer.Close(); reader.Close() })
	f.Fuzz(func(t *testing.T, key string) {
		ctx := context.Background()
		// The value quotes the key: JSON would turn invalid UTF-8 in the value itself into U+FFFD.
		value := strconv.QuoteToASCII(key)
		err := writer.Set(ctx, key, value)
		if key == "" || len(key) > stampede.MaxKeyLen {
			require.ErrorIs(t, err, stampede.ErrInvalidKey)
			_, err = reader.Get(ctx, key, func(context.Context, string) (string, error) {
				t.Fatal("the loader was called for an invalid key")
				return "", nil
			})
			require.ErrorIs(t, err, stampede.ErrInvalidKey)
			return
		}
		require.NoError(t, err)
		got, err := reader.Get(ctx, key, func(_ context.Context, k string) (string, error) {
			return "", errors.New("loaded: the value written under " + k + " was not found")
		})
		require.NoError(t, err)
		require.Equal(t, value, got)
	})
}

// FuzzNamespace: New accepts a namespace or refuses it with a stampede: error, and two
// namespaces that New accepts never see each other's values.
func FuzzNamespace(f *testing.F) {
	f.Add("app", "app2")
	f.Add("a{b", "a")
	m := miniredis.RunT(f)
	f.Fuzz(func(t *testing.T, ns1, ns2 string) {
		if ns1 == ns2 {
			return
		}
		c1, err1 := stampede.New[string](redistest.Client(t, m), stampede.WithNamespace(ns1), stampede.WithoutL1())
		c2, err2 := stampede.New[string](redistest.Client(t, m), stampede.WithNamespace(ns2), stampede.WithoutL1())
		for _, err := range []error{err1, err2} {
			if err != nil {
				require.True(t, strings.HasPrefix(err.Error(), "stampede: "), err.Error())
			}
		}
		if err1 != nil || err2 != nil {
			return
		}
		defer c1.Close()
		defer c2.Close()
		ctx := context.Background()
		require.NoError(t, c1.Set(ctx, "k", "one"))
		require.NoError(t, c2.Set(ctx, "k", "two"))
		for c, want := range map[*stampede.Cache[string]]string{c1: "one", c2: "two"} {
			got, err := c.Get(ctx, "k", func(context.Context, string) (string, error) { return "", stampede.ErrNotFound })
			require.NoError(t, err)
			require.Equal(t, want, got)
		}
	})
}

// FuzzPolicy: a per-key policy with any field values either serves the loaded value or fails
// the call with a stampede: error; it never panics or hangs.
func FuzzPolicy(f *testing.F) {
	f.Add(0, int64(time.Minute), int64(time.Second), int64(0), int64(0), 1.0, 0)
	f.Add(1, int64(-1), int64(-1), int64(-1), int64(-1), math.NaN(), 65)
	m := miniredis.RunT(f)
	f.Fuzz(func(t *testing.T, strategy int, ttl, negative, swr, sie int64, beta float64, replicas int) {
		p := stampede.Policy{
			Strategy: stampede.Strategy(strategy), TTL: time.Duration(ttl), NegativeTTL: time.Duration(negative),
			StaleWhileRevalidate: time.Duration(swr), StaleIfError: time.Duration(sie),
			EarlyRefresh: beta, Replicas: replicas,
		}
		c, err := stampede.New[string](redistest.Client(t, m), stampede.WithPolicy(func(string) stampede.Policy { return p }))
		require.NoError(t, err)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		got, err := c.Get(ctx, "k", func(context.Context, string) (string, error) { return "v", nil })
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "stampede: "), err.Error())
			require.NoError(t, ctx.Err(), "the call hung")
			return
		}
		require.Equal(t, "v", got)
	})
}
