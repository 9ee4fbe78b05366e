package metricsadapter

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveDefaults(t *testing.T) {
	label := func(key string) string { return key }
	o, err := Resolve("pkg", "Registry", struct{}{}, "users", Options{HotKeyLabel: label})
	require.NoError(t, err)
	require.Equal(t, DefaultLoadBuckets(), o.LoadBuckets)
	require.Equal(t, DefaultLoadBuckets(), o.WaitBuckets)
	require.Equal(t, DefaultStaleAgeBuckets(), o.StaleAgeBuckets)
	require.NotNil(t, o.HotKeyLabel)

	o.LoadBuckets[0] = 42
	require.NotEqual(t, 42.0, o.WaitBuckets[0], "each default is a slice of its own")
	require.NotEqual(t, 42.0, DefaultLoadBuckets()[0])
}

func TestResolveKeepsBuckets(t *testing.T) {
	in := Options{LoadBuckets: []float64{1, 2}, WaitBuckets: []float64{3}, StaleAgeBuckets: []float64{-1, 0, 1}}
	o, err := Resolve("pkg", "Registry", struct{}{}, "users", in)
	require.NoError(t, err)
	require.Equal(t, in.LoadBuckets, o.LoadBuckets)
	require.Equal(t, in.WaitBuckets, o.WaitBuckets)
	require.Equal(t, in.StaleAgeBuckets, o.StaleAgeBuckets)
}

func TestResolveRefuses(t *testing.T) {
	for _, tt := range []struct {
		name  string
		dest  any
		cache string
		opts  Options
		err   string
	}{
		{"nil destination", nil, "c", Options{}, "pkg: nil Registry"},
		{"empty name", 1, "", Options{}, `pkg: cache name "" must be non-empty valid UTF-8`},
		{"invalid UTF-8 name", 1, "\xff", Options{}, "cache name"},
		{"empty buckets", 1, "c", Options{LoadBuckets: []float64{}}, "pkg: LoadBuckets [] must be non-empty and strictly increasing"},
		{"decreasing", 1, "c", Options{WaitBuckets: []float64{2, 1}}, "WaitBuckets [2 1]"},
		{"repeated", 1, "c", Options{StaleAgeBuckets: []float64{1, 1}}, "StaleAgeBuckets [1 1]"},
		{"NaN", 1, "c", Options{LoadBuckets: []float64{math.NaN()}}, "LoadBuckets [NaN]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resolve("pkg", "Registry", tt.dest, tt.cache, tt.opts)
			require.ErrorContains(t, err, tt.err)
		})
	}
}

func TestResolveReportsEveryBadBuckets(t *testing.T) {
	_, err := Resolve("pkg", "Registry", 1, "c", Options{WaitBuckets: []float64{2, 1}, StaleAgeBuckets: []float64{1, 1}})
	require.EqualError(t, err, "pkg: WaitBuckets [2 1] must be non-empty and strictly increasing\n"+
		"pkg: StaleAgeBuckets [1 1] must be non-empty and strictly increasing")
}

func TestIncreasing(t *testing.T) {
	require.True(t, increasing([]float64{1}))
	require.True(t, increasing([]float64{-1, 0, 0.5, math.Inf(1)}))
	require.False(t, increasing(nil))
	require.False(t, increasing([]float64{1, 1}))
	require.False(t, increasing([]float64{2, 1}))
	require.False(t, increasing([]float64{1, math.NaN(), 3}))
}
