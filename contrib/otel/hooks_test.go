package stampedeotel_test

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/stampede-cache/stampede"
	stampedeotel "github.com/stampede-cache/stampede/contrib/otel"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// TestJoinedHooksReportToAll gives a cache the metrics' hooks joined with the caller's, and
// with a second Metrics' (as a service exporting to two providers would), and checks that a
// load reaches all of them.
func TestJoinedHooksReportToAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reader, m := instrumented(t, stampedeotel.Options{})
		reader2, m2 := instrumented(t, stampedeotel.Options{})
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
		for _, r := range []sdkmetric.Reader{reader, reader2} {
			requirePoints(t, map[string]float64{
				`stampede.load.duration_count{cache="users",result="ok"}`: 1,
			}, collect(t, r))
		}
	})
}

// TestHooksLeaveCountedEventsOut checks that the hooks whose events the cache counts itself
// are nil, so that the cache skips them.
func TestHooksLeaveCountedEventsOut(t *testing.T) {
	_, m := instrumented(t, stampedeotel.Options{})
	h := m.Hooks()
	require.NotNil(t, h.OnLoad)
	require.NotNil(t, h.OnLeaseWait)
	require.NotNil(t, h.OnStaleServed)
	require.NotNil(t, h.OnRedisError)
	require.Nil(t, h.OnEarlyRefresh)
	require.Nil(t, h.OnHotKey)
	require.Nil(t, h.OnReplicated)
}
