package adaptertest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/metricsadapter"
)

// newValidates checks that New refuses a bad cache name and bad buckets. (Each adapter checks
// its refusal of a nil registry or provider itself.)
func newValidates(t *testing.T, a Adapter) {
	for _, tt := range []struct {
		name  string
		cache string
		opts  metricsadapter.Options
		err   string
	}{
		{"empty name", "", metricsadapter.Options{}, "cache name"},
		{"invalid UTF-8 name", "\xff", metricsadapter.Options{}, "cache name"},
		{"decreasing buckets", "c", metricsadapter.Options{LoadBuckets: []float64{1, 0.5}}, "LoadBuckets"},
		{"empty buckets", "c", metricsadapter.Options{WaitBuckets: []float64{}}, "WaitBuckets"},
		{"repeated bucket", "c", metricsadapter.Options{StaleAgeBuckets: []float64{1, 1}}, "StaleAgeBuckets"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m, err := a.New(t, tt.cache, tt.opts)
			require.ErrorContains(t, err, tt.err)
			require.Nil(t, m)
		})
	}
}
