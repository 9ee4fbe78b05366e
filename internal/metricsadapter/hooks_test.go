package metricsadapter

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
)

// TestHooksRecord checks what each hook gives the Recorder, and that the hooks whose events
// the cache counts itself are nil.
func TestHooksRecord(t *testing.T) {
	var got []any
	h := Hooks(Recorder{
		Load:        func(r Result, s float64) { got = append(got, r, s) },
		LeaseWait:   func(s float64) { got = append(got, "wait", s) },
		StaleServed: func(s float64) { got = append(got, "stale", s) },
		RedisError:  func(op string) { got = append(got, "redis", op) },
	})
	h.OnLoad("k", 20*time.Millisecond, nil)
	h.OnLoad("k", time.Second, stampede.ErrNotFound)
	h.OnLoad("k", 2*time.Second, errors.New("down"))
	h.OnLeaseWait("k", 1500*time.Millisecond)
	h.OnStaleServed("k", time.Minute)
	h.OnRedisError("get", "k", errors.New("down"))
	require.Equal(t, []any{OK, 0.02, NotFound, 1.0, Failed, 2.0, "wait", 1.5, "stale", 60.0, "redis", "get"}, got)

	require.Nil(t, h.OnEarlyRefresh)
	require.Nil(t, h.OnHotKey)
	require.Nil(t, h.OnReplicated)
}

func TestHooksDoNotAllocate(t *testing.T) {
	var n float64
	h := Hooks(Recorder{
		Load:        func(_ Result, s float64) { n += s },
		LeaseWait:   func(s float64) { n += s },
		StaleServed: func(s float64) { n += s },
		RedisError:  func(string) { n++ },
	})
	err := errors.New("down")
	require.Zero(t, testing.AllocsPerRun(100, func() {
		h.OnLoad("k", time.Millisecond, err)
		h.OnLeaseWait("k", time.Millisecond)
		h.OnStaleServed("k", time.Millisecond)
		h.OnRedisError("get", "k", err)
	}))
}
