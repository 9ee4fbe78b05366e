package stampedeprom

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// Options tune a Metrics. The zero value gives the defaults.
type Options struct {
	// LoadBuckets are the upper bounds, in seconds, of the buckets of the load latency
	// histogram (stampede_load_duration_seconds). They must be strictly increasing. If nil, the
	// default suits database lookups: 0.5ms, 1ms, 2.5ms, 5ms, 10ms, 25ms, 50ms, 100ms, 250ms,
	// 500ms, 1s, 2.5s, 5s and 10s (the cache's default load timeout).
	LoadBuckets []float64

	// WaitBuckets are the upper bounds, in seconds, of the buckets of the lease wait histogram
	// (stampede_lease_wait_duration_seconds). They must be strictly increasing. If nil, they are
	// the default LoadBuckets: a waiter waits about as long as the load it waits for.
	WaitBuckets []float64

	// StaleAgeBuckets are the upper bounds, in seconds, of the buckets of the histogram of how
	// long past their fresh lifetime stale values were when served (stampede_stale_age_seconds).
	// They must be strictly increasing. If nil: 100ms, 500ms, 1s, 5s, 10s, 30s, 1m, 5m, 15m, 1h.
	StaleAgeBuckets []float64

	// HotKeyLabel maps a hot key to the value of its key label in
	// stampede_hot_key_requests_per_second, for example to strip personal data or to group keys
	// by their prefix; keys that map to the same value share one series, which shows the rate of
	// the hottest of them. An empty result leaves the key out of the gauge. The result is made
	// valid UTF-8 and cut to 128 bytes. It is called at each scrape for each of the cache's top
	// keys, and must be safe for concurrent use. If nil, the key itself is the label value.
	HotKeyLabel func(key string) string
}

// defaultLoadBuckets returns the default buckets of load and lease wait latency, in seconds.
func defaultLoadBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// defaultStaleAgeBuckets returns the default buckets of the age of stale values, in seconds.
func defaultStaleAgeBuckets() []float64 {
	return []float64{.1, .5, 1, 5, 10, 30, 60, 300, 900, 3600}
}

// Metrics records what one stampede.Cache does as Prometheus metrics. It is a
// prometheus.Collector, registered by New. All methods are safe for concurrent use; the hooks
// it returns are cheap enough to run on request goroutines.
type Metrics struct {
	reg prometheus.Registerer

	loadOK, loadNotFound, loadError prometheus.Observer
	loadDuration                    *prometheus.HistogramVec
	leaseWait                       prometheus.Histogram
	staleAge                        prometheus.Histogram
	redisOpErrors                   *prometheus.CounterVec
	hotKeyRate                      *prometheus.Desc
	hotKeyLabel                     func(key string) string // Options.HotKeyLabel

	src       atomic.Pointer[Source] // set by Observe; nil or nil Source: none observed
	statDescs statDescs
}

// New returns the Metrics of the cache named cache, the value of the cache label of every
// metric, and registers them with reg. It returns an error if cache is empty or not valid
// UTF-8, if reg is nil, if opts are invalid, or if reg refuses the metrics (for instance,
// because a Metrics of the same cache name is registered already). To wrap the metrics in more
// constant labels, give New a prometheus.WrapRegistererWith of reg.
func New(reg prometheus.Registerer, cache string, opts Options) (*Metrics, error) {
	if reg == nil {
		return nil, errors.New("stampedeprom: nil Registerer")
	}
	if cache == "" || !utf8.ValidString(cache) {
		return nil, fmt.Errorf("stampedeprom: cache name %q must be non-empty valid UTF-8", cache)
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	cl := prometheus.Labels{"cache": cache}
	m := &Metrics{
		reg: reg,
		loadDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "stampede_load_duration_seconds",
			Help: "How long the cache's loads (calls of a loader, usually a database query) took, " +
				"by result: ok, not_found or error.",
			ConstLabels: cl,
			Buckets:     opts.LoadBuckets,
		}, []string{"result"}),
		leaseWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "stampede_lease_wait_duration_seconds",
			Help:        "How long callers waited for a load that another instance held the lease of.",
			ConstLabels: cl,
			Buckets:     opts.WaitBuckets,
		}),
		staleAge: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "stampede_stale_age_seconds",
			Help:        "How long past their fresh lifetime the stale values the cache served were.",
			ConstLabels: cl,
			Buckets:     opts.StaleAgeBuckets,
		}),
		redisOpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "stampede_redis_op_errors_total",
			Help: "Redis calls of the cache that failed, by operation (get, lease, fill, subscribe, " +
				"...), including subscription failures.",
			ConstLabels: cl,
		}, []string{"op"}),
		hotKeyRate: prometheus.NewDesc("stampede_hot_key_requests_per_second",
			"Estimated request rate, per second to this instance, of the cache's most requested keys "+
				"in the last hot-key detection window (at most stampede.HotKeys.TopK keys).",
			[]string{"key"}, cl),
		hotKeyLabel: opts.HotKeyLabel,
		statDescs:   newStatDescs(cl),
	}
	m.loadOK = m.loadDuration.WithLabelValues("ok")
	m.loadNotFound = m.loadDuration.WithLabelValues("not_found")
	m.loadError = m.loadDuration.WithLabelValues("error")
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
	src := m.src.Load()
	if src == nil || *src == nil {
		return
	}
	m.statDescs.collect(ch, (*src).Stats())
	seen := make(map[string]bool)
	for _, k := range (*src).HotKeys() { // hottest first: a shared label value shows the hottest
		if l := m.label(k.Key); l != "" && !seen[l] {
			seen[l] = true
			ch <- prometheus.MustNewConstMetric(m.hotKeyRate, prometheus.GaugeValue, k.Rate, l)
		}
	}
}

// label returns the value of the key label of key: Options.HotKeyLabel's, or key, as valid
// UTF-8 (Prometheus rejects anything else) cut at a rune boundary to at most 128 bytes.
func (m *Metrics) label(key string) string {
	if m.hotKeyLabel != nil {
		key = m.hotKeyLabel(key)
	}
	key = strings.ToValidUTF8(key, "\uFFFD")
	return strings.ToValidUTF8(key[:min(len(key), 128)], "") // drops a rune cut in two
}

func (o *Options) validate() error {
	var errs []error
	for _, b := range []struct {
		name    string
		buckets []float64
	}{{"LoadBuckets", o.LoadBuckets}, {"WaitBuckets", o.WaitBuckets}, {"StaleAgeBuckets", o.StaleAgeBuckets}} {
		if b.buckets != nil && !increasing(b.buckets) {
			errs = append(errs, fmt.Errorf("stampedeprom: %s %v must be non-empty and strictly increasing", b.name, b.buckets))
		}
	}
	return errors.Join(errs...)
}

func (o *Options) setDefaults() {
	if o.LoadBuckets == nil {
		o.LoadBuckets = defaultLoadBuckets()
	}
	if o.WaitBuckets == nil {
		o.WaitBuckets = defaultLoadBuckets()
	}
	if o.StaleAgeBuckets == nil {
		o.StaleAgeBuckets = defaultStaleAgeBuckets()
	}
}

// increasing reports whether b is non-empty and strictly increasing (NaN is not).
func increasing(b []float64) bool {
	if len(b) == 0 {
		return false
	}
	for i := range b {
		if b[i] != b[i] || (i > 0 && !(b[i] > b[i-1])) {
			return false
		}
	}
	return true
}
