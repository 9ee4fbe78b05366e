package stampedeotel_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

var ctx = context.Background()

// newCache starts a cache of strings on m, closed when the test ends.
func newCache(t testing.TB, m *miniredis.Miniredis, opts ...stampede.Option) *stampede.Cache[string] {
	t.Helper()
	c, err := stampede.New[string](redistest.Client(t, m), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// source is a Source of fixed counters and hot keys.
type source struct {
	stats stampede.Stats
	hot   []stampede.HotKey
}

func (s source) Stats() stampede.Stats      { return s.stats }
func (s source) HotKeys() []stampede.HotKey { return s.hot }

// loadTime is how long every test loader takes, on the fake clock of a synctest bubble.
const loadTime = 20 * time.Millisecond

var errDatabase = errors.New("database is down")

// loader returns a loader that takes loadTime and then returns value, or err if not nil.
func loader(value string, err error) stampede.Loader[string] {
	return func(ctx context.Context, key string) (string, error) {
		time.Sleep(loadTime)
		if err != nil {
			return "", err
		}
		return value, nil
	}
}

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
	var kv []string
	for _, a := range s.ToSlice() {
		kv = append(kv, fmt.Sprintf("%s=%q", a.Key, a.Value.String()))
	}
	sort.Strings(kv)
	return "{" + strings.Join(kv, ",") + "}"
}

// requirePoints checks that each of want has its value in got.
func requirePoints(t testing.TB, want, got map[string]float64) {
	t.Helper()
	for name, v := range want {
		g, ok := got[name]
		require.Truef(t, ok, "no data point %s in\n%s", name, dump(got))
		require.InDeltaf(t, v, g, 1e-9, "data point %s", name)
	}
}

// withPrefix returns the points of got whose name starts with prefix.
func withPrefix(got map[string]float64, prefix string) map[string]float64 {
	out := make(map[string]float64)
	for name, v := range got {
		if strings.HasPrefix(name, prefix) {
			out[name] = v
		}
	}
	return out
}

func dump(points map[string]float64) string {
	var lines []string
	for name, v := range points {
		lines = append(lines, fmt.Sprintf("%s %v", name, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
