package stampedeprom_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede/internal/metricsadapter/adaptertest"
)

// scrape gathers g and returns each sample by its name and labels, as in the text format
// (`stampede_hits_total{cache="users",layer="l1"}`); a histogram gives its _count and _sum.
func scrape(t testing.TB, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	require.NoError(t, err)
	samples := make(map[string]float64)
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var pairs []string
			for _, l := range m.GetLabel() {
				pairs = append(pairs, l.GetName(), l.GetValue())
			}
			id := adaptertest.Labels(pairs...)
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
