package stampede_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
)

func TestJoinHooks(t *testing.T) {
	var got []string
	a := stampede.Hooks{
		OnLoad:   func(key string, took time.Duration, err error) { got = append(got, "a load "+key) },
		OnHotKey: func(key string, rate float64) { got = append(got, "a hot "+key) },
	}
	b := stampede.Hooks{
		OnLoad:         func(key string, took time.Duration, err error) { got = append(got, "b load "+key) },
		OnEarlyRefresh: func(key string) { got = append(got, "b refresh "+key) },
	}
	j := stampede.JoinHooks(a, stampede.Hooks{}, b)
	j.OnLoad("k", time.Second, nil)
	j.OnHotKey("k", 1)
	j.OnEarlyRefresh("k")
	require.Nil(t, j.OnLeaseWait, "a field no hook sets stays nil")
	require.Equal(t, []string{"a load k", "b load k", "a hot k", "b refresh k"}, got)
}
