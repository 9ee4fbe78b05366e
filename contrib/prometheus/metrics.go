package stampedeprom

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
)

// Metrics records what one stampede.Cache does as Prometheus metrics. It is a
// prometheus.Collector, registered by New. All methods are safe for concurrent use; the hooks
// it returns are cheap enough to run on request goroutines.
type Metrics struct {
	reg prometheus.Registerer

	loadDuration  *prometheus.HistogramVec
	loads         [len(metricsadapter.Results)]prometheus.Observer // loadDuration's, by Result
	leaseWait     prometheus.Histogram
	staleAge      prometheus.Histogram
	redisOpErrors *prometheus.CounterVec
	hotKeyRate    *prometheus.Desc
	statDescs     statDescs

	observed metricsadapter.Observed // the Source given to Observe, and Options.HotKeyLabel
}

// New returns the Metrics of the cache named cache, the value of the cache label of every
// metric, and registers them with reg. It returns an error if cache is empty or not valid
// UTF-8, if reg is nil, if opts are invalid, or if reg refuses the metrics (for instance,
// because a Metrics of the same cache name is registered already). To wrap the metrics in more
// constant labels, give New a prometheus.WrapRegistererWith of reg.
func New(reg prometheus.Registerer, cache string, opts Options) (*Metrics, error) {
	o, err := metricsadapter.Resolve("stampedeprom", "Registerer", reg, cache, metricsadapter.Options(opts))
	if err != nil {
		return nil, err
	}
	cl := prometheus.Labels{"cache": cache}
	m := &Metrics{
		reg:          reg,
		loadDuration: prometheus.NewHistogramVec(histogramOpts(metricsadapter.LoadDuration, cl, o.LoadBuckets), []string{"result"}),
		leaseWait:    prometheus.NewHistogram(histogramOpts(metricsadapter.LeaseWaitDuration, cl, o.WaitBuckets)),
		staleAge:     prometheus.NewHistogram(histogramOpts(metricsadapter.StaleAge, cl, o.StaleAgeBuckets)),
		redisOpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricsadapter.RedisOpErrors.Prom, Help: metricsadapter.RedisOpErrors.Help, ConstLabels: cl,
		}, []string{"op"}),
		hotKeyRate: prometheus.NewDesc(metricsadapter.HotKeyRequests.Prom, metricsadapter.HotKeyRequests.Help,
			[]string{"key"}, cl),
		statDescs: newStatDescs(cl),
	}
	m.observed.HotKeyLabel = o.HotKeyLabel
	for _, r := range metricsadapter.Results {
		m.loads[r] = m.loadDuration.WithLabelValues(r.String())
	}
	if err := reg.Register(m); err != nil {
		return nil, fmt.Errorf("stampedeprom: registering the metrics of cache %q: %w", cache, err)
	}
	return m, nil
}

// Unregister removes the metrics from the Registerer given to New, and reports whether they
// were registered there. Unregister them before creating a Metrics of the same cache name on
// the same Registerer.
func (m *Metrics) Unregister() bool {
	return m.reg.Unregister(m)
}

// Describe sends the descriptors of every metric of m, as prometheus.Collector requires.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.loadDuration.Describe(ch)
	m.leaseWait.Describe(ch)
	m.staleAge.Describe(ch)
	m.redisOpErrors.Describe(ch)
	ch <- m.hotKeyRate
	m.statDescs.describe(ch)
}

// Collect sends the current value of every metric of m, as prometheus.Collector requires. It
// reads the Source given to Observe, if any: its Stats and its HotKeys, once each.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.loadDuration.Collect(ch)
	m.leaseWait.Collect(ch)
	m.staleAge.Collect(ch)
	m.redisOpErrors.Collect(ch)
	m.observed.Read(func(s stampede.Stats) { m.statDescs.collect(ch, s) }, func(label string, rate float64) {
		ch <- prometheus.MustNewConstMetric(m.hotKeyRate, prometheus.GaugeValue, rate, label)
	})
}

// histogramOpts returns the options of the histogram of md.
func histogramOpts(md metricsadapter.Metric, cl prometheus.Labels, buckets []float64) prometheus.HistogramOpts {
	return prometheus.HistogramOpts{Name: md.Prom, Help: md.Help, ConstLabels: cl, Buckets: buckets}
}
