package stampedeprom_test

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	stampedeprom "github.com/stampede-cache/stampede/contrib/prometheus"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// instrumented returns a registry and the Metrics of a cache named "users" registered there.
func instrumented(t *testing.T, opts stampedeprom.Options) (*prometheus.Registry, *stampedeprom.Metrics) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := stampedeprom.New(reg, "users", opts)
	require.NoError(t, err)
	return reg, m
}

// TestHitsMissesAndLoads runs Gets that hit each layer, load, fail and find nothing, and checks
// every counter and the load histogram after a scrape.
func TestHitsMissesAndLoads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, m := instrumented(t, stampedeprom.Options{})
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
		got := scrape(t, reg)
		require.Equal(t, map[string]float64{
			`stampede_hits_total{cache="users",layer="l1"}`:                          1,
			`stampede_hits_total{cache="users",layer="l2"}`:                          1,
			`stampede_misses_total{cache="users"}`:                                   3,
			`stampede_loads_total{cache="users"}`:                                    3,
			`stampede_load_errors_total{cache="users"}`:                              1,
			`stampede_lease_waits_total{cache="users"}`:                              0,
			`stampede_early_refreshes_total{cache="users"}`:                          0,
			`stampede_stale_served_total{cache="users"}`:                             0,
			`stampede_redis_errors_total{cache="users"}`:                             0,
			`stampede_fenced_loads_total{cache="users"}`:                             0,
			`stampede_hot_keys_total{cache="users"}`:                                 0,
			`stampede_replica_hits_total{cache="users"}`:                             0,
			`stampede_replica_misses_total{cache="users"}`:                           0,
			`stampede_codec_errors_total{cache="users"}`:                             0,
			`stampede_lease_wait_duration_seconds_count{cache="users"}`:              0,
			`stampede_lease_wait_duration_seconds_sum{cache="users"}`:                0,
			`stampede_stale_age_seconds_count{cache="users"}`:                        0,
			`stampede_stale_age_seconds_sum{cache="users"}`:                          0,
			`stampede_load_duration_seconds_count{cache="users",result="ok"}`:        1,
			`stampede_load_duration_seconds_sum{cache="users",result="ok"}`:          loadTime.Seconds(),
			`stampede_load_duration_seconds_count{cache="users",result="error"}`:     1,
			`stampede_load_duration_seconds_sum{cache="users",result="error"}`:       loadTime.Seconds(),
			`stampede_load_duration_seconds_count{cache="users",result="not_found"}`: 1,
			`stampede_load_duration_seconds_sum{cache="users",result="not_found"}`:   loadTime.Seconds(),
		}, got, "no Redis error by op and no hot key: no series")

		problems, err := testutil.GatherAndLint(reg)
		require.NoError(t, err)
		require.Empty(t, problems)
	})
}

// TestLoadHistogramBuckets checks that a load lands in the bucket of its duration, and that the
// series of every result exist from the start, so that rate() sees their first increase.
func TestLoadHistogramBuckets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, m := instrumented(t, stampedeprom.Options{LoadBuckets: []float64{0.01, 0.05, 1}})
		c := newCache(t, redistest.Mini(t), stampede.WithHooks(m.Hooks()))
		_, err := c.Get(ctx, "k", loader("v", nil))
		require.NoError(t, err)

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
		require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want), "stampede_load_duration_seconds"))
	})
}

// TestLeaseWait holds another instance's load of a key for 1.5 seconds while the instrumented
// cache waits for it.
func TestLeaseWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, m := instrumented(t, stampedeprom.Options{})
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

		requireSamples(t, map[string]float64{
			`stampede_lease_waits_total{cache="users"}`:                 1,
			`stampede_misses_total{cache="users"}`:                      1,
			`stampede_loads_total{cache="users"}`:                       0,
			`stampede_lease_wait_duration_seconds_count{cache="users"}`: 1,
			`stampede_lease_wait_duration_seconds_sum{cache="users"}`:   1.5,
		}, scrape(t, reg))
	})
}

// TestStaleServedAndRefreshed serves a value past its TTL while one background refresh
// replaces it (stale-while-revalidate).
func TestStaleServedAndRefreshed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, m := instrumented(t, stampedeprom.Options{})
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
		requireSamples(t, map[string]float64{
			`stampede_hits_total{cache="users",layer="l2"}`:                   1,
			`stampede_stale_served_total{cache="users"}`:                      1,
			`stampede_early_refreshes_total{cache="users"}`:                   1,
			`stampede_loads_total{cache="users"}`:                             2,
			`stampede_stale_age_seconds_count{cache="users"}`:                 1,
			`stampede_stale_age_seconds_sum{cache="users"}`:                   0.5,
			`stampede_load_duration_seconds_count{cache="users",result="ok"}`: 2,
		}, scrape(t, reg))
	})
}

// TestRedisErrorsByOperation fails Redis for one Get: the cache loads without it and reports
// the failed GET.
func TestRedisErrorsByOperation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, m := instrumented(t, stampedeprom.Options{})
		r := redistest.Mini(t)
		c := newCache(t, r, stampede.WithHooks(m.Hooks()))
		m.Observe(c)

		r.SetError("ERR injected")
		v, err := c.Get(ctx, "k", loader("v", nil))
		r.SetError("")
		require.NoError(t, err)
		require.Equal(t, "v", v)

		got := scrape(t, reg)
		requireSamples(t, map[string]float64{
			`stampede_redis_op_errors_total{cache="users",op="get"}`: 1,
			`stampede_redis_errors_total{cache="users"}`:             1,
			`stampede_loads_total{cache="users"}`:                    1,
		}, got)
		require.Len(t, withPrefix(got, "stampede_redis_op_errors_total"), 1)
	})
}

// TestReplicaHitsAndMisses reads a replicated key: a miss of a replica and of the primary, then
// hits of the replicas the load filled, then a replica miss once they expired.
func TestReplicaHitsAndMisses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, m := instrumented(t, stampedeprom.Options{})
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
		requireSamples(t, map[string]float64{
			`stampede_replica_hits_total{cache="users"}`:    3,
			`stampede_replica_misses_total{cache="users"}`:  2,
			`stampede_hits_total{cache="users",layer="l2"}`: float64(s.L2Hits),
		}, scrape(t, reg))
	})
}

// TestObserveNilStops checks that the counters and the hot-key gauge go when Observe is given
// nil.
func TestObserveNilStops(t *testing.T) {
	reg, m := instrumented(t, stampedeprom.Options{})
	m.Observe(source{stats: stampede.Stats{L1Hits: 7}, hot: []stampede.HotKey{{Key: "k", Rate: 9}}})
	got := scrape(t, reg)
	require.Equal(t, 7.0, got[`stampede_hits_total{cache="users",layer="l1"}`])
	require.Equal(t, 9.0, got[`stampede_hot_key_requests_per_second{cache="users",key="k"}`])
	m.Observe(nil)
	got = scrape(t, reg)
	require.Empty(t, withPrefix(got, "stampede_hits_total"))
	require.Empty(t, withPrefix(got, "stampede_hot_key_requests_per_second"))
}

// TestHooksDoNotAllocate checks that the hooks of the request path cost no allocation.
func TestHooksDoNotAllocate(t *testing.T) {
	_, m := instrumented(t, stampedeprom.Options{})
	h := m.Hooks()
	events := func() {
		h.OnLoad("k", time.Millisecond, nil)
		h.OnLoad("k", time.Millisecond, stampede.ErrNotFound)
		h.OnLoad("k", time.Millisecond, errDatabase)
		h.OnLeaseWait("k", time.Millisecond)
		h.OnStaleServed("k", time.Second)
		h.OnRedisError("get", "k", errDatabase)
	}
	events() // the first error of an operation creates its series
	require.Zero(t, testing.AllocsPerRun(100, events))
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

	users.Observe(source{stats: stampede.Stats{Misses: 2}})
	got := scrape(t, reg)
	require.Equal(t, 2.0, got[`stampede_misses_total{cache="users"}`])
	require.Equal(t, 0.0, got[`stampede_load_duration_seconds_count{cache="orders",result="ok"}`])

	require.True(t, users.Unregister())
	require.False(t, users.Unregister())
	_, err = stampedeprom.New(reg, "users", stampedeprom.Options{})
	require.NoError(t, err)
}

func TestNewValidates(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, tt := range []struct {
		name  string
		reg   prometheus.Registerer
		cache string
		opts  stampedeprom.Options
		err   string
	}{
		{"nil registerer", nil, "c", stampedeprom.Options{}, "nil Registerer"},
		{"empty name", reg, "", stampedeprom.Options{}, "cache name"},
		{"invalid UTF-8 name", reg, "\xff", stampedeprom.Options{}, "cache name"},
		{"decreasing buckets", reg, "c", stampedeprom.Options{LoadBuckets: []float64{1, 0.5}}, "LoadBuckets"},
		{"empty buckets", reg, "c", stampedeprom.Options{WaitBuckets: []float64{}}, "WaitBuckets"},
		{"repeated bucket", reg, "c", stampedeprom.Options{StaleAgeBuckets: []float64{1, 1}}, "StaleAgeBuckets"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := stampedeprom.New(tt.reg, tt.cache, tt.opts)
			require.ErrorContains(t, err, tt.err)
			require.Nil(t, m)
		})
	}
	families, err := reg.Gather()
	require.NoError(t, err)
	require.Empty(t, families, "nothing registered by a failed New")
}
