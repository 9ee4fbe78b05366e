package breaker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBreaker(t *testing.T) {
	b := New(3, time.Second)
	now := int64(time.Hour)
	require.True(t, b.Allow(now))
	require.False(t, b.Failure(now))
	b.Success()
	require.False(t, b.Failure(now))
	require.False(t, b.Failure(now))
	require.True(t, b.Failure(now), "the third failure in a row opens it")
	require.False(t, b.Allow(now))
	require.True(t, b.Open(now))

	later := now + int64(time.Second)
	require.True(t, b.Allow(later), "one probe after the cooldown")
	require.False(t, b.Allow(later), "only one")
	require.True(t, b.Failure(later), "a failed probe opens it again")
	require.False(t, b.Allow(later+int64(time.Second)-1))

	again := later + int64(time.Second)
	require.True(t, b.Allow(again))
	b.Success()
	require.True(t, b.Allow(again))
	require.False(t, b.Open(again))
	require.False(t, b.Failure(again), "a closed breaker counts failures from zero")
}

func TestAbandonedProbe(t *testing.T) {
	b := New(1, time.Second)
	b.Failure(0)
	later := int64(time.Second)
	require.True(t, b.Allow(later))
	b.Abandon() // the probe's caller gave up before Redis answered
	require.True(t, b.Allow(later), "the next call probes")
	b.Success()
	require.False(t, b.Open(later))
}

func TestAllowDoesNotAllocate(t *testing.T) {
	b := New(3, time.Second)
	require.Zero(t, testing.AllocsPerRun(100, func() { b.Allow(1); b.Success() }))
}
