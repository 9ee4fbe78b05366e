package stampedeotel_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stampede-cache/stampede/internal/metricsadapter/adaptertest"
)

var ctx = context.Background()

// collect reads r and returns each data point by its instrument's name and attributes
// (`stampede.hits{cache="users",layer="l1"}`); a histogram gives its _count and _sum.
func collect(t testing.TB, r sdkmetric.Reader) map[string]float64 {
	t.Helper()
	points := make(map[string]float64)
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(ctx, &rm))
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				require.True(t, d.IsMonotonic, m.Name)
				require.Equal(t, metricdata.CumulativeTemporality, d.Temporality, m.Name)
				for _, p := range d.DataPoints {
					points[m.Name+attrs(p.Attributes)] = float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					points[m.Name+attrs(p.Attributes)] = p.Value
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					points[m.Name+"_count"+attrs(p.Attributes)] = float64(p.Count)
					points[m.Name+"_sum"+attrs(p.Attributes)] = p.Sum
				}
			default:
				t.Fatalf("unexpected data %T of %s", m.Data, m.Name)
			}
		}
	}
	return points
}

// histogram is a data point of a histogram, with its instrument's name and attributes.
type histogram struct {
	name, attrs string
	metricdata.HistogramDataPoint[float64]
}

// histograms reads r and returns the data points of its histograms.
func histograms(t testing.TB, r sdkmetric.Reader) []histogram {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(ctx, &rm))
	var out []histogram
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Histogram[float64]); ok {
				for _, p := range d.DataPoints {
					out = append(out, histogram{m.Name, attrs(p.Attributes), p})
				}
			}
		}
	}
	return out
}

func attrs(s attribute.Set) string {
	var pairs []string
	for _, a := range s.ToSlice() {
		pairs = append(pairs, string(a.Key), a.Value.String())
	}
	return adaptertest.Labels(pairs...)
}
