package adaptertest

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// joinedHooksReportToAll gives a cache the metrics' hooks joined with the caller's, and with a
// second Metrics' (as a service exporting to two registries or providers would), and checks
// that a load reaches all of them.
func joinedHooksReportToAll(t *testing.T, a Adapter) {
	synctest.Test(t, func(t *testing.T) {
		m := a.Instrumented(t, metricsadapter.Options{})
		m2 := a.Instrumented(t, metricsadapter.Options{})
		var mu sync.Mutex
		var loaded []string
		mine := stampede.Hooks{OnLoad: func(key string, took time.Duration, err error) {
			mu.Lock()
			loaded = append(loaded, key)
			mu.Unlock()
		}}
		c := NewCache(t, redistest.Mini(t), stampede.WithHooks(stampede.JoinHooks(m.Hooks(), mine, m2.Hooks())))
		_, err := c.Get(ctx, "k", Loader("v", nil))
		require.NoError(t, err)

		require.Equal(t, []string{"k"}, loaded)
		for _, m := range []Metrics{m, m2} {
			a.requireSamples(t, map[string]float64{
				`stampede_load_duration_seconds_count{cache="users",result="ok"}`: 1,
			}, m.Samples(t))
		}
	})
}

// hooksLeaveCountedEventsOut checks that the hooks whose events the cache counts itself are
// nil, so that the cache skips them.
func hooksLeaveCountedEventsOut(t *testing.T, a Adapter) {
	h := a.Instrumented(t, metricsadapter.Options{}).Hooks()
	require.NotNil(t, h.OnLoad)
	require.NotNil(t, h.OnLeaseWait)
	require.NotNil(t, h.OnStaleServed)
	require.NotNil(t, h.OnRedisError)
	require.Nil(t, h.OnEarlyRefresh)
	require.Nil(t, h.OnHotKey)
	require.Nil(t, h.OnReplicated)
}

// hooksDoNotAllocate checks that the hooks of the request path cost no allocation: the
// adapter adds none to what its library's instruments need.
func hooksDoNotAllocate(t *testing.T, a Adapter) {
	h := a.Instrumented(t, metricsadapter.Options{}).Hooks()
	events := func() {
		h.OnLoad("k", time.Millisecond, nil)
		h.OnLoad("k", time.Millisecond, stampede.ErrNotFound)
		h.OnLoad("k", time.Millisecond, ErrDatabase)
		h.OnLeaseWait("k", time.Millisecond)
		h.OnStaleServed("k", time.Second)
		h.OnRedisError("get", "k", ErrDatabase)
	}
	events() // the first error of an operation creates its series, or its data point
	require.Zero(t, testing.AllocsPerRun(100, events))
}
