package stampedeotel_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/stampede-cache/stampede"
	stampedeotel "github.com/stampede-cache/stampede/contrib/otel"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// instrumented returns a manual reader and the Metrics of a cache named "users" on a
// MeterProvider that it reads.
func instrumented(t *testing.T, opts stampedeotel.Options) (*sdkmetric.ManualReader, *stampedeotel.Metrics) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { require.NoError(t, mp.Shutdown(context.Background())) })
	m, err := stampedeotel.New(mp, "users", opts)
	require.NoError(t, err)
	return reader, m
}

// TestHitsMissesAndLoads runs Gets that hit each layer, load, fail and find nothing, and checks
// every counter and the load histogram after a collection.
func TestHitsMissesAndLoads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		r := redistest.Mini(t)
		other := newCache(t, r) // another instance of the service, not instrumented
		c := newCache(t, r, stampede.WithHooks(m.Hooks()))
		m.Observe(c)

		v, err := c.Get(ctx, "user:1", loader("ann", nil))
		require.NoError(t, err)
		require.Equal(t, "ann", v)

		require.NoError(t, other.Set(ctx, "user:2", "bob"))
		synctest.Wait() // the write's message has reached c
		for range 2 {   // from Redis, then from c's L1
			v, err = c.Get(ctx, "user:2", loader("never", nil))
			require.NoError(t, err)
			require.Equal(t, "bob", v)
		}

		_, err = c.Get(ctx, "user:3", loader("", errDatabase))
		require.ErrorIs(t, err, errDatabase)
		_, err = c.Get(ctx, "user:4", loader("", stampede.ErrNotFound))
		require.ErrorIs(t, err, stampede.ErrNotFound)

		require.Equal(t, stampede.Stats{Gets: 5, L1Hits: 1, L2Hits: 1, Misses: 3, Loads: 3, LoadErrors: 1}, c.Stats())
		require.Equal(t, map[string]float64{
			`stampede.hits{cache="users",layer="l1"}`:                        1,
			`stampede.hits{cache="users",layer="l2"}`:                        1,
			`stampede.misses{cache="users"}`:                                 3,
			`stampede.loads{cache="users"}`:                                  3,
			`stampede.load.errors{cache="users"}`:                            1,
			`stampede.lease.waits{cache="users"}`:                            0,
			`stampede.early_refreshes{cache="users"}`:                        0,
			`stampede.stale_served{cache="users"}`:                           0,
			`stampede.redis.errors{cache="users"}`:                           0,
			`stampede.fenced_loads{cache="users"}`:                           0,
			`stampede.hot_keys{cache="users"}`:                               0,
			`stampede.replica.hits{cache="users"}`:                           0,
			`stampede.replica.misses{cache="users"}`:                         0,
			`stampede.codec_errors{cache="users"}`:                           0,
			`stampede.load.duration_count{cache="users",result="ok"}`:        1,
			`stampede.load.duration_sum{cache="users",result="ok"}`:          loadTime.Seconds(),
			`stampede.load.duration_count{cache="users",result="error"}`:     1,
			`stampede.load.duration_sum{cache="users",result="error"}`:       loadTime.Seconds(),
			`stampede.load.duration_count{cache="users",result="not_found"}`: 1,
			`stampede.load.duration_sum{cache="users",result="not_found"}`:   loadTime.Seconds(),
		}, collect(t, reader), "no lease wait, stale value, Redis error or hot key: no data point")
	})
}

// TestLoadHistogramBuckets checks that the histogram has the buckets asked for, and that a load
// lands in the bucket of its duration.
func TestLoadHistogramBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{LoadBuckets: []float64{0.01, 0.05, 1}})
		c := newCache(t, redistest.Mini(t), stampede.WithHooks(m.Hooks()))
		_, err := c.Get(ctx, "k", loader("v", nil))
		require.NoError(t, err)

		h := histograms(t, reader)
		require.Len(t, h, 1)
		require.Equal(t, "stampede.load.duration", h[0].name)
		require.Equal(t, []float64{0.01, 0.05, 1}, h[0].Bounds)
		require.Equal(t, []uint64{0, 1, 0, 0}, h[0].BucketCounts)
	})
}

// TestDefaultBuckets checks the default buckets of each histogram.
func TestDefaultBuckets(t *testing.T) {
	reader, m := instrumented(t, stampedeotel.Options{})
	h := m.Hooks()
	h.OnLoad("k", time.Millisecond, nil)
	h.OnLeaseWait("k", time.Millisecond)
	h.OnStaleServed("k", time.Second)
	bounds := map[string][]float64{}
	for _, p := range histograms(t, reader) {
		bounds[p.name] = p.Bounds
	}
	load := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	require.Equal(t, map[string][]float64{
		"stampede.load.duration":       load,
		"stampede.lease.wait.duration": load,
		"stampede.stale.age":           {.1, .5, 1, 5, 10, 30, 60, 300, 900, 3600},
	}, bounds)
}

// TestLeaseWait holds another instance's load of a key for 1.5 seconds while the instrumented
// cache waits for it.
func TestLeaseWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		r := redistest.Mini(t)
		other := newCache(t, r)
		c := newCache(t, r, stampede.WithHooks(m.Hooks()))
		m.Observe(c)

		started, gate := make(chan struct{}), make(chan struct{})
		held := func(context.Context, string) (string, error) {
			close(started)
			<-gate
			return "v", nil
		}
		leader := make(chan error)
		go func() {
			_, err := other.Get(ctx, "k", held)
			leader <- err
		}()
		<-started
		waiter := make(chan error)
		go func() {
			_, err := c.Get(ctx, "k", loader("never", nil))
			waiter <- err
		}()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		close(gate)
		require.NoError(t, <-leader)
		require.NoError(t, <-waiter)

		requirePoints(t, map[string]float64{
			`stampede.lease.waits{cache="users"}`:               1,
			`stampede.misses{cache="users"}`:                    1,
			`stampede.loads{cache="users"}`:                     0,
			`stampede.lease.wait.duration_count{cache="users"}`: 1,
			`stampede.lease.wait.duration_sum{cache="users"}`:   1.5,
		}, collect(t, reader))
	})
}

// TestStaleServedAndRefreshed serves a value past its TTL while one background refresh
// replaces it (stale-while-revalidate).
func TestStaleServedAndRefreshed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		c := newCache(t, redistest.Mini(t), stampede.WithHooks(m.Hooks()), stampede.WithoutL1(),
			stampede.WithTTL(time.Second), stampede.WithJitter(0), stampede.WithEarlyRefresh(0),
			stampede.WithStaleWhileRevalidate(10*time.Second))
		m.Observe(c)

		_, err := c.Get(ctx, "k", loader("v1", nil))
		require.NoError(t, err)
		time.Sleep(1500 * time.Millisecond) // half a second past the TTL
		v, err := c.Get(ctx, "k", loader("v2", nil))
		require.NoError(t, err)
		require.Equal(t, "v1", v)
		time.Sleep(loadTime)
		synctest.Wait() // the refresh is done

		require.Equal(t, stampede.Stats{Gets: 2, L2Hits: 1, Misses: 1, Loads: 2, EarlyRefreshes: 1, StaleServed: 1}, c.Stats())
		requirePoints(t, map[string]float64{
			`stampede.hits{cache="users",layer="l2"}`:                 1,
			`stampede.stale_served{cache="users"}`:                    1,
			`stampede.early_refreshes{cache="users"}`:                 1,
			`stampede.loads{cache="users"}`:                           2,
			`stampede.stale.age_count{cache="users"}`:                 1,
			`stampede.stale.age_sum{cache="users"}`:                   0.5,
			`stampede.load.duration_count{cache="users",result="ok"}`: 2,
		}, collect(t, reader))
	})
}

// TestRedisErrorsByOperation fails Redis for one Get: the cache loads without it and reports
// the failed GET.
func TestRedisErrorsByOperation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		r := redistest.Mini(t)
		c := newCache(t, r, stampede.WithHooks(m.Hooks()))
		m.Observe(c)

		r.SetError("ERR injected")
		v, err := c.Get(ctx, "k", loader("v", nil))
		r.SetError("")
		require.NoError(t, err)
		require.Equal(t, "v", v)

		got := collect(t, reader)
		requirePoints(t, map[string]float64{
			`stampede.redis.op_errors{cache="users",op="get"}`: 1,
			`stampede.redis.errors{cache="users"}`:             1,
			`stampede.loads{cache="users"}`:                    1,
		}, got)
		require.Len(t, withPrefix(got, "stampede.redis.op_errors"), 1)
	})
}

// TestReplicaHitsAndMisses reads a replicated key: a miss of a replica and of the primary, then
// hits of the replicas the load filled, then a replica miss once they expired.
func TestReplicaHitsAndMisses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		c := newCache(t, redistest.Mini(t), stampede.WithHooks(m.Hooks()), stampede.WithoutL1(),
			stampede.WithReplicas(2), stampede.WithReplicaTTL(time.Second))
		m.Observe(c)

		for range 4 { // a load that fills the replicas, then replica hits
			_, err := c.Get(ctx, "k", loader("v", nil))
			require.NoError(t, err)
		}
		time.Sleep(2 * time.Second) // the replicas expire, the primary stays
		_, err := c.Get(ctx, "k", loader("v", nil))
		require.NoError(t, err)

		s := c.Stats()
		require.Equal(t, uint64(3), s.ReplicaHits)
		require.Equal(t, uint64(2), s.ReplicaMisses)
		requirePoints(t, map[string]float64{
			`stampede.replica.hits{cache="users"}`:    3,
			`stampede.replica.misses{cache="users"}`:  2,
			`stampede.hits{cache="users",layer="l2"}`: float64(s.L2Hits),
		}, collect(t, reader))
	})
}

// TestObserveNilStops checks that the counters and the hot-key gauge go when Observe is given
// nil.
func TestObserveNilStops(t *testing.T) {
	reader, m := instrumented(t, stampedeotel.Options{})
	m.Observe(source{stats: stampede.Stats{L1Hits: 7}, hot: []stampede.HotKey{{Key: "k", Rate: 9}}})
	got := collect(t, reader)
	require.Equal(t, 7.0, got[`stampede.hits{cache="users",layer="l1"}`])
	require.Equal(t, 9.0, got[`stampede.hot_key.requests{cache="users",key="k"}`])
	m.Observe(nil)
	got = collect(t, reader)
	require.Empty(t, withPrefix(got, "stampede.hits"))
	require.Empty(t, withPrefix(got, "stampede.hot_key.requests"))
}

// TestUnregister checks that Unregister stops the observations, once and for all, and leaves
// the hooks recording.
func TestUnregister(t *testing.T) {
	reader, m := instrumented(t, stampedeotel.Options{})
	m.Observe(source{stats: stampede.Stats{Misses: 1}, hot: []stampede.HotKey{{Key: "k", Rate: 2000}}})
	h := m.Hooks()
	require.NoError(t, m.Unregister())
	require.NoError(t, m.Unregister())
	h.OnLoad("k", time.Millisecond, nil)
	got := collect(t, reader)
	require.Empty(t, withPrefix(got, "stampede.misses"))
	require.Empty(t, withPrefix(got, "stampede.hot_key.requests"))
	require.Equal(t, 1.0, got[`stampede.load.duration_count{cache="users",result="ok"}`])
}

// TestHooksAllocations bounds the allocations of the hooks of the request path: the adapter
// adds none to what the SDK's instruments need.
func TestHooksAllocations(t *testing.T) {
	_, m := instrumented(t, stampedeotel.Options{})
	h := m.Hooks()
	events := func() {
		h.OnLoad("k", time.Millisecond, nil)
		h.OnLoad("k", time.Millisecond, stampede.ErrNotFound)
		h.OnLoad("k", time.Millisecond, errDatabase)
		h.OnLeaseWait("k", time.Millisecond)
		h.OnStaleServed("k", time.Second)
		h.OnRedisError("get", "k", errDatabase)
	}
	events() // the first event of each attribute set creates its data point
	require.Zero(t, testing.AllocsPerRun(100, events))
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
	users.Observe(source{stats: stampede.Stats{Misses: 2}})
	orders.Observe(source{stats: stampede.Stats{Misses: 5}})
	orders.Hooks().OnLeaseWait("k", time.Second)

	got := collect(t, reader)
	require.Equal(t, 2.0, got[`stampede.misses{cache="users"}`])
	require.Equal(t, 5.0, got[`stampede.misses{cache="orders"}`])
	require.Equal(t, map[string]float64{
		`stampede.lease.wait.duration_count{cache="orders"}`: 1,
		`stampede.lease.wait.duration_sum{cache="orders"}`:   1,
	}, withPrefix(got, "stampede.lease.wait.duration"))
}

func TestNewValidates(t *testing.T) {
	mp := sdkmetric.NewMeterProvider()
	defer func() { require.NoError(t, mp.Shutdown(ctx)) }()
	for _, tt := range []struct {
		name  string
		mp    *sdkmetric.MeterProvider
		cache string
		opts  stampedeotel.Options
		err   string
	}{
		{"nil provider", nil, "c", stampedeotel.Options{}, "nil MeterProvider"},
		{"empty name", mp, "", stampedeotel.Options{}, "cache name"},
		{"invalid UTF-8 name", mp, "\xff", stampedeotel.Options{}, "cache name"},
		{"decreasing buckets", mp, "c", stampedeotel.Options{LoadBuckets: []float64{1, 0.5}}, "LoadBuckets"},
		{"empty buckets", mp, "c", stampedeotel.Options{WaitBuckets: []float64{}}, "WaitBuckets"},
		{"repeated bucket", mp, "c", stampedeotel.Options{StaleAgeBuckets: []float64{1, 1}}, "StaleAgeBuckets"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			var m *stampedeotel.Metrics
			if tt.mp == nil {
				m, err = stampedeotel.New(nil, tt.cache, tt.opts)
			} else {
				m, err = stampedeotel.New(tt.mp, tt.cache, tt.opts)
			}
			require.ErrorContains(t, err, tt.err)
			require.Nil(t, m)
		})
	}
}
