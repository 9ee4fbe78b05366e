package harness

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		250 * time.Microsecond:  "250 µs",
		1250 * time.Microsecond: "1.25 ms",
		57 * time.Millisecond:   "57 ms",
		2500 * time.Millisecond: "2.50 s",
	} {
		require.Equal(t, want, Duration(d, " "))
	}
	require.Equal(t, "1.25ms", Duration(1250*time.Microsecond, ""))
}

func TestNearestRank(t *testing.T) {
	ds := []time.Duration{1, 2, 3, 4}
	require.Equal(t, time.Duration(2), NearestRank(ds, 0.5))
	require.Equal(t, time.Duration(4), NearestRank(ds, 0.99))
	require.Equal(t, time.Duration(4), NearestRank(ds, 1))
	require.Equal(t, time.Duration(1), NearestRank(ds, 0.01))
	require.Equal(t, time.Duration(7), NearestRank([]time.Duration{7}, 0.5))
}
