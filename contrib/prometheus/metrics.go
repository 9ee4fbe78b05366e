package stampedeprom

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stampede-cache/stampede"
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

	// MaxHotKeys bounds how many keys the hot-key gauge (stampede_hot_key_requests_per_second)
	// holds at once, and so its number of series. When it is full, a newly reported key
	// replaces the tracked key of the lowest rate if its own rate is higher, and is left out
	// otherwise; the cache's count of reports (stampede_hot_keys_total) counts it either way.
	// If 0, the default is 20, more than the 16 keys the cache's detector tracks by default;
	// it may not be negative.
	MaxHotKeys int

	// HotKeyTTL is how long a key stays in the hot-key gauge, with the rate of its last
	// report, after it was last reported hot. The cache reports a hot key once per detection
	// window (stampede.HotKeys.Window, 1 second by default), so a key drops out of the gauge
	// when it has not been hot for HotKeyTTL. Set it to at least twice the window, and to at
	// least the scrape interval so that a key hot for a single window reaches a scrape. If 0,
	// the default is 30 seconds; it may not be negative.
	HotKeyTTL time.Duration

	// HotKeyLabel maps a hot key to the value of its key label, for example to strip personal
	// data or to group keys by their prefix; keys that map to the same value share one series,
	// which shows the rate reported last. An empty result leaves the key out of the gauge. The
	// result is made valid UTF-8 and cut to 128 bytes. It is called once per hot-key report and
	// must be safe for concurrent use. If nil, the key itself is the label value.
	HotKeyLabel func(key string) string
}

const (
	defaultMaxHotKeys = 20
	defaultHotKeyTTL  = 30 * time.Second
)

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
	hot                             *hotKeys

	stats     atomic.Pointer[func() stampede.Stats] // set by ObserveStats; nil: no counters
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
			"Estimated request rate, per second to this instance, of the keys reported hot: the rate "+
				"of each key's last report, for HotKeyTTL after it (at most MaxHotKeys keys).",
			[]string{"key"}, cl),
		hot:       newHotKeys(opts.MaxHotKeys, opts.HotKeyTTL, opts.HotKeyLabel),
		statDescs: newStatDescs(cl),
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
// calls the function given to ObserveStats, if any, once.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.loadDuration.Collect(ch)
	m.leaseWait.Collect(ch)
	m.staleAge.Collect(ch)
	m.redisOpErrors.Collect(ch)
	for _, k := range m.hot.snapshot() {
		metric, err := prometheus.NewConstMetric(m.hotKeyRate, prometheus.GaugeValue, k.rate, k.label)
		if err != nil {
			metric = prometheus.NewInvalidMetric(m.hotKeyRate, err)
		}
		ch <- metric
	}
	if f := m.stats.Load(); f != nil {
		m.statDescs.collect(ch, (*f)())
	}
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
	if o.MaxHotKeys < 0 {
		errs = append(errs, fmt.Errorf("stampedeprom: negative MaxHotKeys %d", o.MaxHotKeys))
	}
	if o.HotKeyTTL < 0 {
		errs = append(errs, fmt.Errorf("stampedeprom: negative HotKeyTTL %v", o.HotKeyTTL))
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
	if o.MaxHotKeys == 0 {
		o.MaxHotKeys = defaultMaxHotKeys
	}
	if o.HotKeyTTL == 0 {
		o.HotKeyTTL = defaultHotKeyTTL
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
