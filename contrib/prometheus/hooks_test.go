package stampedeprom_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	stampedeprom "github.com/stampede-cache/stampede/contrib/prometheus"
)

// TestWrapReportsToBoth gives a cache the metrics' hooks wrapped around the caller's, and
// checks that a load reaches both.
func TestWrapReportsToBoth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, m := instrumented(t, stampedeprom.Options{})
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
		requireSamples(t, map[string]float64{
			`stampede_load_duration_seconds_count{cache="users",result="ok"}`: 1,
		}, scrape(t, reg))
	})
}

// TestWrapCallsEachHookOnce calls every field of wrapped Hooks and counts the calls that reach
// the caller's hooks and the metrics.
func TestWrapCallsEachHookOnce(t *testing.T) {
	reg, m := instrumented(t, stampedeprom.Options{})
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
	requireSamples(t, map[string]float64{
		`stampede_load_duration_seconds_count{cache="users",result="ok"}`: 1,
		`stampede_lease_wait_duration_seconds_count{cache="users"}`:       1,
		`stampede_stale_age_seconds_count{cache="users"}`:                 1,
		`stampede_redis_op_errors_total{cache="users",op="fill"}`:         1,
		`stampede_hot_key_requests_per_second{cache="users",key="k"}`:     2000,
	}, scrape(t, reg))
}

// TestWrapKeepsNilFields checks that wrapping empty Hooks changes nothing, and that a field
// neither side sets stays nil, so the cache skips it.
func TestWrapKeepsNilFields(t *testing.T) {
	_, m := instrumented(t, stampedeprom.Options{})
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
// two registries would.
func TestWrapChainsAdapters(t *testing.T) {
	reg1, m1 := instrumented(t, stampedeprom.Options{})
	reg2, m2 := instrumented(t, stampedeprom.Options{})
	h := m1.Wrap(m2.Hooks())
	h.OnLeaseWait("k", time.Second)
	require.Equal(t, 1.0, scrape(t, reg1)[`stampede_lease_wait_duration_seconds_count{cache="users"}`])
	require.Equal(t, 1.0, scrape(t, reg2)[`stampede_lease_wait_duration_seconds_count{cache="users"}`])
}
