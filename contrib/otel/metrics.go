package stampedeotel

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the name of the instrumentation scope, the meter, of the instruments.
const ScopeName = "github.com/stampede-cache/stampede/contrib/otel"

// Options tune a Metrics. The zero value gives the defaults.
type Options struct {
	// LoadBuckets are the bucket boundaries, in seconds, advised for the load latency histogram
	// (stampede.load.duration); a view of the MeterProvider may override them. They must be
	// strictly increasing. If nil, the default suits database lookups: 0.5ms, 1ms, 2.5ms, 5ms,
	// 10ms, 25ms, 50ms, 100ms, 250ms, 500ms, 1s, 2.5s, 5s and 10s (the cache's default load
	// timeout).
	LoadBuckets []float64

	// WaitBuckets are the bucket boundaries, in seconds, advised for the lease wait histogram
	// (stampede.lease.wait.duration). They must be strictly increasing. If nil, they are the
	// default LoadBuckets: a waiter waits about as long as the load it waits for.
	WaitBuckets []float64

	// StaleAgeBuckets are the bucket boundaries, in seconds, advised for the histogram of how
	// long past their fresh lifetime stale values were when served (stampede.stale.age). They
	// must be strictly increasing. If nil: 100ms, 500ms, 1s, 5s, 10s, 30s, 1m, 5m, 15m, 1h.
	StaleAgeBuckets []float64

	// HotKeyLabel maps a hot key to the value of its key attribute in stampede.hot_key.requests,
	// for example to strip personal data or to group keys by their prefix; keys that map to the
	// same value share one attribute set, which shows the rate of the hottest of them. An empty
	// result leaves the key out of the gauge. The result is made valid UTF-8 and cut to 128
	// bytes. It is called at each collection for each of the cache's top keys, and must be safe
	// for concurrent use. If nil, the key itself is the value.
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

// Metrics records what one stampede.Cache does with OpenTelemetry instruments. All methods are
// safe for concurrent use; the hooks it returns are cheap enough to run on request goroutines.
type Metrics struct {
	cache attribute.KeyValue

	loadDuration                    metric.Float64Histogram
	loadOK, loadNotFound, loadError []metric.RecordOption // the attributes of each result
	leaseWait                       metric.Float64Histogram
	staleAge                        metric.Float64Histogram
	cacheRecord                     []metric.RecordOption // the cache attribute alone
	redisOpErrors                   metric.Int64Counter
	opAttrs                         sync.Map // op string -> []metric.AddOption
	hotKeyRate                      metric.Float64ObservableGauge
	hotKeyLabel                     func(key string) string // Options.HotKeyLabel

	src          atomic.Pointer[Source] // set by Observe; nil or nil Source: none observed
	statCounters statCounters
	registration metric.Registration
}

// New returns the Metrics of the cache named cache, the value of the cache attribute of every
// measurement, with instruments from the meter ScopeName of mp. It returns an error if mp is
// nil, if cache is empty or not valid UTF-8, if opts are invalid, or if the meter refuses an
// instrument or the callback that observes the counters.
func New(mp metric.MeterProvider, cache string, opts Options) (*Metrics, error) {
	if mp == nil {
		return nil, errors.New("stampedeotel: nil MeterProvider")
	}
	if cache == "" || !utf8.ValidString(cache) {
		return nil, fmt.Errorf("stampedeotel: cache name %q must be non-empty valid UTF-8", cache)
	}
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	meter := mp.Meter(ScopeName)
	m := &Metrics{
		cache:       attribute.String("cache", cache),
		hotKeyLabel: opts.HotKeyLabel,
	}
	result := func(r string) []metric.RecordOption {
		return []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(m.cache, attribute.String("result", r)))}
	}
	m.loadOK, m.loadNotFound, m.loadError = result("ok"), result("not_found"), result("error")
	m.cacheRecord = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(m.cache))}

	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	m.loadDuration, err = meter.Float64Histogram("stampede.load.duration",
		metric.WithDescription("How long the cache's loads (calls of a loader, usually a database query) took, "+
			"by result: ok, not_found or error."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(opts.LoadBuckets...))
	check(err)
	m.leaseWait, err = meter.Float64Histogram("stampede.lease.wait.duration",
		metric.WithDescription("How long callers waited for a load that another instance held the lease of."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(opts.WaitBuckets...))
	check(err)
	m.staleAge, err = meter.Float64Histogram("stampede.stale.age",
		metric.WithDescription("How long past their fresh lifetime the stale values the cache served were."),
		metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(opts.StaleAgeBuckets...))
	check(err)
	m.redisOpErrors, err = meter.Int64Counter("stampede.redis.op_errors",
		metric.WithDescription("Redis calls of the cache that failed, by operation (get, lease, fill, "+
			"subscribe, ...), including subscription failures."),
		metric.WithUnit("{error}"))
	check(err)
	m.hotKeyRate, err = meter.Float64ObservableGauge("stampede.hot_key.requests",
		metric.WithDescription("Estimated request rate, per second to this instance, of the cache's most "+
			"requested keys in the last hot-key detection window (at most stampede.HotKeys.TopK keys)."),
		metric.WithUnit("{request}/s"))
	check(err)
	m.statCounters, err = newStatCounters(meter, m.cache)
	check(err)
	if len(errs) == 0 {
		m.registration, err = meter.RegisterCallback(m.observe, append(m.statCounters.all(), m.hotKeyRate)...)
		check(err)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("stampedeotel: instruments of cache %q: %w", cache, errors.Join(errs...))
	}
	return m, nil
}

// Unregister stops the observation of the counters and of the hot-key gauge, and releases the
// Source given to Observe. The hooks keep recording to their instruments, which OpenTelemetry
// cannot remove. Unregister is idempotent.
func (m *Metrics) Unregister() error {
	m.src.Store(nil)
	return m.registration.Unregister()
}

// observe is the callback of the observable instruments, run at each collection: it reads the
// Source given to Observe, if any, its Stats and its HotKeys once each.
func (m *Metrics) observe(_ context.Context, o metric.Observer) error {
	src := m.src.Load()
	if src == nil || *src == nil {
		return nil
	}
	m.statCounters.observe(o, (*src).Stats())
	keys := (*src).HotKeys() // hottest first: an attribute value shared by keys shows the hottest
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		if v := m.keyValue(k.Key); v != "" && !seen[v] {
			seen[v] = true
			o.ObserveFloat64(m.hotKeyRate, k.Rate, metric.WithAttributes(m.cache, attribute.String("key", v)))
		}
	}
	return nil
}

// keyValue returns the value of the key attribute of key: Options.HotKeyLabel's, or key, made
// valid UTF-8 (OTLP and Prometheus need it) and cut at a rune boundary to at most 128 bytes.
func (m *Metrics) keyValue(key string) string {
	if m.hotKeyLabel != nil {
		key = m.hotKeyLabel(key)
	}
	v := strings.ToValidUTF8(key, "\uFFFD")
	return strings.ToValidUTF8(v[:min(len(v), 128)], "") // drops a rune cut in two
}

func (o *Options) validate() error {
	var errs []error
	for _, b := range []struct {
		name    string
		buckets []float64
	}{{"LoadBuckets", o.LoadBuckets}, {"WaitBuckets", o.WaitBuckets}, {"StaleAgeBuckets", o.StaleAgeBuckets}} {
		if b.buckets != nil && !increasing(b.buckets) {
			errs = append(errs, fmt.Errorf("stampedeotel: %s %v must be non-empty and strictly increasing", b.name, b.buckets))
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
