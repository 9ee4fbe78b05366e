package adaptertest

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// hitsMissesAndLoads runs Gets that hit each layer, load, fail and find nothing, and checks
// every counter and the load histogram after a collection.
func hitsMissesAndLoads(t *testing.T, a Adapter) {
	synctest.Test(t, func(t *testing.T) {
		m := a.Instrumented(t, metricsadapter.Options{})
		r := redistest.Mini(t)
		other := NewCache(t, r) // another instance of the service, not instrumented
		c := NewCache(t, r, stampede.WithHooks(m.Hooks()))
		m.Observe(c)

		v, err := c.Get(ctx, "user:1", Loader("ann", nil))
		require.NoError(t, err)
		require.Equal(t, "ann", v)

		require.NoError(t, other.Set(ctx, "user:2", "bob"))
		synctest.Wait() // the write's message has reached c
		for range 2 {   // from Redis, then from c's L1
			v, err = c.Get(ctx, "user:2", Loader("never", nil))
			require.NoError(t, err)
			require.Equal(t, "bob", v)
		}

		_, err = c.Get(ctx, "user:3", Loader("", ErrDatabase))
		require.ErrorIs(t, err, ErrDatabase)
		_, err = c.Get(ctx, "user:4", Loader("", stampede.ErrNotFound))
		require.ErrorIs(t, err, stampede.ErrNotFound)

		require.Equal(t, stampede.Stats{Gets: 5, L1Hits: 1, L2Hits: 1, Misses: 3, Loads: 3, LoadErrors: 1}, counters(c.Stats()))
		want := map[string]float64{
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
			`stampede_load_duration_seconds_count{cache="users",result="ok"}`:        1,
			`stampede_load_duration_seconds_sum{cache="users",result="ok"}`:          LoadTime.Seconds(),
			`stampede_load_duration_seconds_count{cache="users",result="error"}`:     1,
			`stampede_load_duration_seconds_sum{cache="users",result="error"}`:       LoadTime.Seconds(),
			`stampede_load_duration_seconds_count{cache="users",result="not_found"}`: 1,
			`stampede_load_duration_seconds_sum{cache="users",result="not_found"}`:   LoadTime.Seconds(),
		}
		msg := "no lease wait, stale value, Redis error or hot key: no data point"
		if a.EmptyHistograms {
			want[`stampede_lease_wait_duration_seconds_count{cache="users"}`] = 0
			want[`stampede_lease_wait_duration_seconds_sum{cache="users"}`] = 0
			want[`stampede_stale_age_seconds_count{cache="users"}`] = 0
			want[`stampede_stale_age_seconds_sum{cache="users"}`] = 0
			msg = "no Redis error by op and no hot key: no series"
		}
		require.Equal(t, a.namedAll(want), m.Samples(t), msg)
	})
}

// leaseWait holds another instance's load of a key for 1.5 seconds while the instrumented
// cache waits for it.
func leaseWait(t *testing.T, a Adapter) {
	synctest.Test(t, func(t *testing.T) {
		m := a.Instrumented(t, metricsadapter.Options{})
		r := redistest.Mini(t)
		other := NewCache(t, r)
		c := NewCache(t, r, stampede.WithHooks(m.Hooks()))
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
			_, err := c.Get(ctx, "k", Loader("never", nil))
			waiter <- err
		}()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		close(gate)
		require.NoError(t, <-leader)
		require.NoError(t, <-waiter)

		a.requireSamples(t, map[string]float64{
			`stampede_lease_waits_total{cache="users"}`:                 1,
			`stampede_misses_total{cache="users"}`:                      1,
			`stampede_loads_total{cache="users"}`:                       0,
			`stampede_lease_wait_duration_seconds_count{cache="users"}`: 1,
			`stampede_lease_wait_duration_seconds_sum{cache="users"}`:   1.5,
		}, m.Samples(t))
	})
}

// staleServedAndRefreshed serves a value past its TTL while one background refresh replaces
// it (stale-while-revalidate).
func staleServedAndRefreshed(t *testing.T, a Adapter) {
	synctest.Test(t, func(t *testing.T) {
		m := a.Instrumented(t, metricsadapter.Options{})
		c := NewCache(t, redistest.Mini(t), stampede.WithHooks(m.Hooks()), stampede.WithoutL1(),
			stampede.WithTTL(time.Second), stampede.WithJitter(0), stampede.WithEarlyRefresh(0),
			stampede.WithStaleWhileRevalidate(10*time.Second))
		m.Observe(c)

		_, err := c.Get(ctx, "k", Loader("v1", nil))
		require.NoError(t, err)
		time.Sleep(1500 * time.Millisecond) // half a second past the TTL
		v, err := c.Get(ctx, "k", Loader("v2", nil))
		require.NoError(t, err)
		require.Equal(t, "v1", v)
		time.Sleep(LoadTime)
		synctest.Wait() // the refresh is done

		require.Equal(t, stampede.Stats{Gets: 2, L2Hits: 1, Misses: 1, Loads: 2, EarlyRefreshes: 1, StaleServed: 1}, counters(c.Stats()))
		a.requireSamples(t, map[string]float64{
			`stampede_hits_total{cache="users",layer="l2"}`:                   1,
			`stampede_stale_served_total{cache="users"}`:                      1,
			`stampede_early_refreshes_total{cache="users"}`:                   1,
			`stampede_loads_total{cache="users"}`:                             2,
			`stampede_stale_age_seconds_count{cache="users"}`:                 1,
			`stampede_stale_age_seconds_sum{cache="users"}`:                   0.5,
			`stampede_load_duration_seconds_count{cache="users",result="ok"}`: 2,
		}, m.Samples(t))
	})
}

// redisErrorsByOperation fails Redis for one Get: the cache loads without it and reports the
// failed GET.
func redisErrorsByOperation(t *testing.T, a Adapter) {
	synctest.Test(t, func(t *testing.T) {
		m := a.Instrumented(t, metricsadapter.Options{})
		r := redistest.Mini(t)
		c := NewCache(t, r, stampede.WithHooks(m.Hooks()))
		m.Observe(c)

		r.SetError("ERR injected")
		v, err := c.Get(ctx, "k", Loader("v", nil))
		r.SetError("")
		require.NoError(t, err)
		require.Equal(t, "v", v)

		got := m.Samples(t)
		a.requireSamples(t, map[string]float64{
			`stampede_redis_op_errors_total{cache="users",op="get"}`: 1,
			`stampede_redis_errors_total{cache="users"}`:             1,
			`stampede_loads_total{cache="users"}`:                    1,
		}, got)
		require.Len(t, a.withPrefix(got, "stampede_redis_op_errors_total"), 1)
	})
}

// replicaHitsAndMisses reads a replicated key: a miss of a replica and of the primary, then
// hits of the replicas the load filled, then a replica miss once they expired.
func replicaHitsAndMisses(t *testing.T, a Adapter) {
	synctest.Test(t, func(t *testing.T) {
		m := a.Instrumented(t, metricsadapter.Options{})
		c := NewCache(t, redistest.Mini(t), stampede.WithHooks(m.Hooks()), stampede.WithoutL1(),
			stampede.WithReplicas(2), stampede.WithReplicaTTL(time.Second))
		m.Observe(c)

		for range 4 { // a load that fills the replicas, then replica hits
			_, err := c.Get(ctx, "k", Loader("v", nil))
			require.NoError(t, err)
		}
		time.Sleep(2 * time.Second) // the replicas expire, the primary stays
		_, err := c.Get(ctx, "k", Loader("v", nil))
		require.NoError(t, err)

		s := c.Stats()
		require.Equal(t, uint64(3), s.ReplicaHits)
		require.Equal(t, uint64(2), s.ReplicaMisses)
		a.requireSamples(t, map[string]float64{
			`stampede_replica_hits_total{cache="users"}`:    3,
			`stampede_replica_misses_total{cache="users"}`:  2,
			`stampede_hits_total{cache="users",layer="l2"}`: float64(s.L2Hits),
		}, m.Samples(t))
	})
}

// observeNilStops checks that the counters and the hot-key gauge go when Observe is given nil.
func observeNilStops(t *testing.T, a Adapter) {
	m := a.Instrumented(t, metricsadapter.Options{})
	m.Observe(FixedSource{Counters: stampede.Stats{L1Hits: 7}, Keys: []stampede.HotKey{{Key: "k", Rate: 9}}})
	got := m.Samples(t)
	require.Equal(t, 7.0, got[a.named(`stampede_hits_total{cache="users",layer="l1"}`)])
	require.Equal(t, 9.0, got[a.named(`stampede_hot_key_requests_per_second{cache="users",key="k"}`)])
	m.Observe(nil)
	got = m.Samples(t)
	require.Empty(t, a.withPrefix(got, "stampede_hits_total"))
	require.Empty(t, a.withPrefix(got, "stampede_hot_key_requests_per_second"))
}

// counters returns the counters of s, without the L1's gauges.
func counters(s stampede.Stats) stampede.Stats {
	s.L1Entries, s.L1Bytes = 0, 0
	return s
}
