package stampedeprom_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	stampedeprom "github.com/stampede-cache/stampede/contrib/prometheus"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// TestJoinedHooksReportToAll gives a cache the metrics' hooks joined with the caller's, and
// with a second Metrics' (as a service exporting to two registries would), and checks that a
// load reaches all of them.
func TestJoinedHooksReportToAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg, m := instrumented(t, stampedeprom.Options{})
		reg2, m2 := instrumented(t, stampedeprom.Options{})
		var mu sync.Mutex
		var loaded []string
		mine := stampede.Hooks{OnLoad: func(key string, took time.Duration, err error) {
			mu.Lock()
			loaded = append(loaded, key)
			mu.Unlock()
		}}
		c := newCache(t, redistest.Mini(t), stampede.WithHooks(stampede.JoinHooks(m.Hooks(), mine, m2.Hooks())))
		_, err := c.Get(ctx, "k", loader("v", nil))
		require.NoError(t, err)

		require.Equal(t, []string{"k"}, loaded)
		for _, r := range []prometheus.Gatherer{reg, reg2} {
			requireSamples(t, map[string]float64{
				`stampede_load_duration_seconds_count{cache="users",result="ok"}`: 1,
			}, scrape(t, r))
		}
	})
}

// TestHooksLeaveCountedEventsOut checks that the hooks whose events the cache counts itself
// are nil, so that the cache skips them.
func TestHooksLeaveCountedEventsOut(t *testing.T) {
	_, m := instrumented(t, stampedeprom.Options{})
	h := m.Hooks()
	require.NotNil(t, h.OnLoad)
	require.NotNil(t, h.OnLeaseWait)
	require.NotNil(t, h.OnStaleServed)
	require.NotNil(t, h.OnRedisError)
	require.Nil(t, h.OnEarlyRefresh)
	require.Nil(t, h.OnHotKey)
	require.Nil(t, h.OnReplicated)
}
