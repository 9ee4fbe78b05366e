package stampedeprom

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
)

// statDescs describe the counters of stampede.Stats, by metricsadapter.Counter.
type statDescs [metricsadapter.NumCounters]*prometheus.Desc

func newStatDescs(cl prometheus.Labels) statDescs {
	var d statDescs
	for c := range metricsadapter.NumCounters {
		var labels []string
		if c.Layered() {
			labels = []string{"layer"}
		}
		d[c] = prometheus.NewDesc(c.Metric().Prom, c.Metric().Help, labels, cl)
	}
	return d
}

func (d *statDescs) describe(ch chan<- *prometheus.Desc) {
	for _, desc := range d {
		ch <- desc
	}
}

func (d *statDescs) collect(ch chan<- prometheus.Metric, s stampede.Stats) {
	for _, c := range metricsadapter.Counts(s) {
		var labels []string
		if c.Layer != "" {
			labels = []string{c.Layer}
		}
		ch <- prometheus.MustNewConstMetric(d[c.Counter], prometheus.CounterValue, float64(c.Value), labels...)
	}
}
