package stampedeotel_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stampede-cache/stampede"
	stampedeotel "github.com/stampede-cache/stampede/contrib/otel"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
	"github.com/stampede-cache/stampede/internal/metricsadapter/adaptertest"
)

// TestInstruments pins the name and unit of every instrument, which the shared tests take from
// the catalogue of package metricsadapter.
func TestInstruments(t *testing.T) {
	m := adapter.Instrumented(t, metricsadapter.Options{}).(metrics)
	m.Observe(adaptertest.FixedSource{Keys: []stampede.HotKey{{Key: "k", Rate: 1}}})
	h := m.Hooks()
	h.OnLoad("k", time.Millisecond, nil)
	h.OnLeaseWait("k", time.Millisecond)
	h.OnStaleServed("k", time.Second)
	h.OnRedisError("get", "k", adaptertest.ErrDatabase)
	var rm metricdata.ResourceMetrics
	require.NoError(t, m.reader.Collect(ctx, &rm))
	require.Len(t, rm.ScopeMetrics, 1)
	require.Equal(t, stampedeotel.ScopeName, rm.ScopeMetrics[0].Scope.Name)
	units := map[string]string{}
	for _, md := range rm.ScopeMetrics[0].Metrics {
		units[md.Name] = md.Unit
	}
	require.Equal(t, map[string]string{
		"stampede.load.duration":       "s",
		"stampede.lease.wait.duration": "s",
		"stampede.stale.age":           "s",
		"stampede.redis.op_errors":     "{error}",
		"stampede.hot_key.requests":    "{request}/s",
		"stampede.hits":                "{request}",
		"stampede.misses":              "{request}",
		"stampede.loads":               "{load}",
		"stampede.load.errors":         "{load}",
		"stampede.lease.waits":         "{wait}",
		"stampede.early_refreshes":     "{refresh}",
		"stampede.stale_served":        "{request}",
		"stampede.redis.errors":        "{error}",
		"stampede.fenced_loads":        "{load}",
		"stampede.hot_keys":            "{report}",
		"stampede.replica.hits":        "{request}",
		"stampede.replica.misses":      "{read}",
		"stampede.codec_errors":        "{error}",
	}, units)
}

// TestLoadHistogramBuckets checks that the histogram has the buckets asked for, and that a load
// lands in the bucket of its duration.
func TestLoadHistogramBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := adapter.Instrumented(t, metricsadapter.Options{LoadBuckets: []float64{0.01, 0.05, 1}}).(metrics)
		adaptertest.GetOnce(t, m)

		h := histograms(t, m.reader)
		require.Len(t, h, 1)
		require.Equal(t, "stampede.load.duration", h[0].name)
		require.Equal(t, []float64{0.01, 0.05, 1}, h[0].Bounds)
		require.Equal(t, []uint64{0, 1, 0, 0}, h[0].BucketCounts)
	})
}

// TestDefaultBuckets checks the default buckets of each histogram.
func TestDefaultBuckets(t *testing.T) {
	m := adapter.Instrumented(t, metricsadapter.Options{}).(metrics)
	h := m.Hooks()
	h.OnLoad("k", time.Millisecond, nil)
	h.OnLeaseWait("k", time.Millisecond)
	h.OnStaleServed("k", time.Second)
	bounds := map[string][]float64{}
	for _, p := range histograms(t, m.reader) {
		bounds[p.name] = p.Bounds
	}
	load := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	require.Equal(t, map[string][]float64{
		"stampede.load.duration":       load,
		"stampede.lease.wait.duration": load,
		"stampede.stale.age":           {.1, .5, 1, 5, 10, 30, 60, 300, 900, 3600},
	}, bounds)
}

// TestUnregister checks that Unregister stops the observations, once and for all, and leaves
// the hooks recording.
func TestUnregister(t *testing.T) {
	m := adapter.Instrumented(t, metricsadapter.Options{}).(metrics)
	m.Observe(adaptertest.FixedSource{Counters: stampede.Stats{Misses: 1}, Keys: []stampede.HotKey{{Key: "k", Rate: 2000}}})
	h := m.Hooks()
	require.NoError(t, m.Unregister())
	require.NoError(t, m.Unregister())
	h.OnLoad("k", time.Millisecond, nil)
	got := collect(t, m.reader)
	require.Empty(t, adaptertest.WithPrefix(got, "stampede.misses"))
	require.Empty(t, adaptertest.WithPrefix(got, "stampede.hot_key.requests"))
	require.Equal(t, 1.0, got[`stampede.load.duration_count{cache="users",result="ok"}`])
}

// TestTwoCachesShareAProvider checks that two caches' Metrics record apart on one provider.
func TestTwoCachesShareAProvider(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { require.NoError(t, mp.Shutdown(ctx)) }()
	users, err := stampedeotel.New(mp, "users", stampedeotel.Options{})
	require.NoError(t, err)
	orders, err := stampedeotel.New(mp, "orders", stampedeotel.Options{})
	require.NoError(t, err)
	users.Observe(adaptertest.FixedSource{Counters: stampede.Stats{Misses: 2}})
	orders.Observe(adaptertest.FixedSource{Counters: stampede.Stats{Misses: 5}})
	orders.Hooks().OnLeaseWait("k", time.Second)

	got := collect(t, reader)
	require.Equal(t, 2.0, got[`stampede.misses{cache="users"}`])
	require.Equal(t, 5.0, got[`stampede.misses{cache="orders"}`])
	require.Equal(t, map[string]float64{
		`stampede.lease.wait.duration_count{cache="orders"}`: 1,
		`stampede.lease.wait.duration_sum{cache="orders"}`:   1,
	}, adaptertest.WithPrefix(got, "stampede.lease.wait.duration"))
}

// TestNewRefusesNilProvider checks New's check of its MeterProvider; the shared tests check
// the others.
func TestNewRefusesNilProvider(t *testing.T) {
	m, err := stampedeotel.New(nil, "c", stampedeotel.Options{})
	require.ErrorContains(t, err, "nil MeterProvider")
	require.Nil(t, m)
}
