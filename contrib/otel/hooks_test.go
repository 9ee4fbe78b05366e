package stampedeotel_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	stampedeotel "github.com/stampede-cache/stampede/contrib/otel"
)

// TestWrapReportsToBoth gives a cache the metrics' hooks wrapped around the caller's, and
// checks that a load reaches both.
func TestWrapReportsToBoth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		var mu sync.Mutex
		var loaded []string
		mine := stampede.Hooks{OnLoad: func(key string, took time.Duration, err error) {
			mu.Lock()
			loaded = append(loaded, key)
			mu.Unlock()
		}}
		c := newCache(t, miniRedis(t), stampede.WithHooks(m.Wrap(mine)))
		_, err := c.Get(ctx, "k", loader("v", nil))
		require.NoError(t, err)

		require.Equal(t, []string{"k"}, loaded)
		requirePoints(t, map[string]float64{
			`stampede.load.duration_count{cache="users",result="ok"}`: 1,
		}, collect(t, reader))
	})
}

// TestWrapCallsEachHookOnce calls every field of wrapped Hooks and counts the calls that reach
// the caller's hooks and the metrics.
func TestWrapCallsEachHookOnce(t *testing.T) {
	reader, m := instrumented(t, stampedeotel.Options{})
	calls := map[string]int{}
	h := m.Wrap(stampede.Hooks{
		OnLoad:         func(string, time.Duration, error) { calls["load"]++ },
		OnLeaseWait:    func(string, time.Duration) { calls["leaseWait"]++ },
		OnStaleServed:  func(string, time.Duration) { calls["staleServed"]++ },
		OnEarlyRefresh: func(string) { calls["earlyRefresh"]++ },
		OnRedisError:   func(string, string, error) { calls["redisError"]++ },
		OnHotKey:       func(string, float64) { calls["hotKey"]++ },
	})
	h.OnLoad("k", time.Second, nil)
	h.OnLeaseWait("k", time.Second)
	h.OnStaleServed("k", time.Second)
	h.OnEarlyRefresh("k")
	h.OnRedisError("fill", "k", errDatabase)
	h.OnHotKey("k", 2000)
	require.Equal(t, map[string]int{"load": 1, "leaseWait": 1, "staleServed": 1, "earlyRefresh": 1,
		"redisError": 1, "hotKey": 1}, calls)
	requirePoints(t, map[string]float64{
		`stampede.load.duration_count{cache="users",result="ok"}`: 1,
		`stampede.lease.wait.duration_count{cache="users"}`:       1,
		`stampede.stale.age_count{cache="users"}`:                 1,
		`stampede.redis.op_errors{cache="users",op="fill"}`:       1,
		`stampede.hot_key.requests{cache="users",key="k"}`:        2000,
	}, collect(t, reader))
}

// TestWrapKeepsNilFields checks that wrapping empty Hooks changes nothing, and that a field
// neither side sets stays nil, so the cache skips it.
func TestWrapKeepsNilFields(t *testing.T) {
	_, m := instrumented(t, stampedeotel.Options{})
	h := m.Wrap(stampede.Hooks{})
	require.Nil(t, h.OnEarlyRefresh)
	require.NotNil(t, h.OnLoad)
	require.NotNil(t, h.OnHotKey)

	refreshed := 0
	h = m.Wrap(stampede.Hooks{OnEarlyRefresh: func(string) { refreshed++ }})
	h.OnEarlyRefresh("k")
	require.Equal(t, 1, refreshed)
}

// TestWrapChainsAdapters wraps one Metrics around another's hooks, as a service exporting to
// two providers would.
func TestWrapChainsAdapters(t *testing.T) {
	reader1, m1 := instrumented(t, stampedeotel.Options{})
	reader2, m2 := instrumented(t, stampedeotel.Options{})
	h := m1.Wrap(m2.Hooks())
	h.OnLeaseWait("k", time.Second)
	require.Equal(t, 1.0, collect(t, reader1)[`stampede.lease.wait.duration_count{cache="users"}`])
	require.Equal(t, 1.0, collect(t, reader2)[`stampede.lease.wait.duration_count{cache="users"}`])
}
