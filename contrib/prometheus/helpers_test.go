package stampedeprom_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

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

// scrape gathers g and returns each sample by its name and labels, as in the text format
// (`stampede_hits_total{cache="users",layer="l1"}`); a histogram gives its _count and _sum.
func scrape(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	require.NoError(t, err)
	samples := make(map[string]float64)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			id := labels(m)
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				samples[f.GetName()+id] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				samples[f.GetName()+id] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				samples[f.GetName()+"_count"+id] = float64(m.GetHistogram().GetSampleCount())
				samples[f.GetName()+"_sum"+id] = m.GetHistogram().GetSampleSum()
			default:
				t.Fatalf("unexpected metric type %v of %s", f.GetType(), f.GetName())
			}
		}
	}
	return samples
}

func labels(m *dto.Metric) string {
	var ls []string
	for _, l := range m.GetLabel() {
		ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(ls)
	return "{" + strings.Join(ls, ",") + "}"
}

// requireSamples checks that each of want has its value in got.
func requireSamples(t testing.TB, want, got map[string]float64) {
	t.Helper()
	for name, v := range want {
		g, ok := got[name]
		require.Truef(t, ok, "no sample %s in\n%s", name, dump(got))
		require.InDeltaf(t, v, g, 1e-9, "sample %s", name)
	}
}

// withPrefix returns the samples of got whose name starts with prefix.
func withPrefix(got map[string]float64, prefix string) map[string]float64 {
	out := make(map[string]float64)
	for name, v := range got {
		if strings.HasPrefix(name, prefix) {
			out[name] = v
		}
	}
	return out
}

func dump(samples map[string]float64) string {
	var lines []string
	for name, v := range samples {
		lines = append(lines, fmt.Sprintf("%s %v", name, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
