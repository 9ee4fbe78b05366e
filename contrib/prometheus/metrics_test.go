package stampedeprom_test

import (
	"strings"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	stampedeprom "github.com/stampede-cache/stampede/contrib/prometheus"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
	"github.com/stampede-cache/stampede/internal/metricsadapter/adaptertest"
)

// TestLoadHistogramBuckets checks that a load lands in the bucket of its duration, and that the
// series of every result exist from the start, so that rate() sees their first increase.
func TestLoadHistogramBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := adapter.Instrumented(t, metricsadapter.Options{LoadBuckets: []float64{0.01, 0.05, 1}}).(metrics)
		adaptertest.GetOnce(t, m)

		const want = `
# HELP stampede_load_duration_seconds How long the cache's loads (calls of a loader, usually a database query) took, by result: ok, not_found or error.
# TYPE stampede_load_duration_seconds histogram
stampede_load_duration_seconds_bucket{cache="users",result="error",le="0.01"} 0
stampede_load_duration_seconds_bucket{cache="users",result="error",le="0.05"} 0
stampede_load_duration_seconds_bucket{cache="users",result="error",le="1"} 0
stampede_load_duration_seconds_bucket{cache="users",result="error",le="+Inf"} 0
stampede_load_duration_seconds_sum{cache="users",result="error"} 0
stampede_load_duration_seconds_count{cache="users",result="error"} 0
stampede_load_duration_seconds_bucket{cache="users",result="not_found",le="0.01"} 0
stampede_load_duration_seconds_bucket{cache="users",result="not_found",le="0.05"} 0
stampede_load_duration_seconds_bucket{cache="users",result="not_found",le="1"} 0
stampede_load_duration_seconds_bucket{cache="users",result="not_found",le="+Inf"} 0
stampede_load_duration_seconds_sum{cache="users",result="not_found"} 0
stampede_load_duration_seconds_count{cache="users",result="not_found"} 0
stampede_load_duration_seconds_bucket{cache="users",result="ok",le="0.01"} 0
stampede_load_duration_seconds_bucket{cache="users",result="ok",le="0.05"} 1
stampede_load_duration_seconds_bucket{cache="users",result="ok",le="1"} 1
stampede_load_duration_seconds_bucket{cache="users",result="ok",le="+Inf"} 1
stampede_load_duration_seconds_sum{cache="users",result="ok"} 0.02
stampede_load_duration_seconds_count{cache="users",result="ok"} 1
`
		require.NoError(t, testutil.GatherAndCompare(m.reg, strings.NewReader(want), "stampede_load_duration_seconds"))
	})
}

// TestTwoCachesShareARegistry checks that caches of different names share a registry, and
// that a name is refused twice until its Metrics are unregistered.
func TestTwoCachesShareARegistry(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	users, err := stampedeprom.New(reg, "users", stampedeprom.Options{})
	require.NoError(t, err)
	_, err = stampedeprom.New(reg, "orders", stampedeprom.Options{})
	require.NoError(t, err)
	_, err = stampedeprom.New(reg, "users", stampedeprom.Options{})
	var already prometheus.AlreadyRegisteredError
	require.ErrorAs(t, err, &already)

	users.Observe(adaptertest.FixedSource{Counters: stampede.Stats{Misses: 2}})
	got := scrape(t, reg)
	require.Equal(t, 2.0, got[`stampede_misses_total{cache="users"}`])
	require.Equal(t, 0.0, got[`stampede_load_duration_seconds_count{cache="orders",result="ok"}`])

	require.True(t, users.Unregister())
	require.False(t, users.Unregister())
	_, err = stampedeprom.New(reg, "users", stampedeprom.Options{})
	require.NoError(t, err)
}

// TestNewRefusesNilRegisterer checks New's check of its registerer; the shared tests check
// the others.
func TestNewRefusesNilRegisterer(t *testing.T) {
	m, err := stampedeprom.New(nil, "c", stampedeprom.Options{})
	require.ErrorContains(t, err, "nil Registerer")
	require.Nil(t, m)
}
