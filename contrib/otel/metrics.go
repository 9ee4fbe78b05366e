package stampedeotel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stampede-cache/stampede"
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

	// MaxHotKeys bounds how many keys the hot-key gauge (stampede.hot_key.requests) holds at
	// once, and so its number of attribute sets. When it is full, a newly reported key replaces
	// the tracked key of the lowest rate if its own rate is higher, and is left out otherwise;
	// the cache's count of reports (stampede.hot_keys) counts it either way. If 0, the default
	// is 20, more than the 16 keys the cache's detector tracks by default; it may not be
	// negative.
	MaxHotKeys int

	// HotKeyTTL is how long a key stays in the hot-key gauge, with the rate of its last
	// report, after it was last reported hot. The cache reports a hot key once per detection
	// window (stampede.HotKeys.Window, 1 second by default), so a key drops out of the gauge
	// when it has not been hot for HotKeyTTL. Set it to at least twice the window, and to at
	// least the export interval so that a key hot for a single window reaches an export. If 0,
	// the default is 30 seconds; it may not be negative.
	HotKeyTTL time.Duration

	// HotKeyLabel maps a hot key to the value of its key attribute, for example to strip
	// personal data or to group keys by their prefix; keys that map to the same value share one
	// attribute set, which shows the rate reported last. An empty result leaves the key out of
	// the gauge. The result is made valid UTF-8 and cut to 128 bytes. It is called once per
	// hot-key report and must be safe for concurrent use. If nil, the key itself is the value.
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
	hot                             *hotKeys

	stats        atomic.Pointer[func() stampede.Stats] // set by ObserveStats; nil: no counters
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
		cache: attribute.String("cache", cache),
		hot:   newHotKeys(opts.MaxHotKeys, opts.HotKeyTTL, opts.HotKeyLabel),
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
		metric.WithDescription("Estimated request rate, per second to this instance, of the keys reported "+
			"hot: the rate of each key's last report, for HotKeyTTL after it (at most MaxHotKeys keys)."),
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
// function given to ObserveStats. The hooks keep recording to their instruments, which
// OpenTelemetry cannot remove. Unregister is idempotent.
func (m *Metrics) Unregister() error {
	m.stats.Store(nil)
	return m.registration.Unregister()
}

// observe is the callback of the observable instruments, run at each collection.
func (m *Metrics) observe(_ context.Context, o metric.Observer) error {
	for _, k := range m.hot.snapshot() {
		o.ObserveFloat64(m.hotKeyRate, k.rate, metric.WithAttributes(m.cache, attribute.String("key", k.label)))
	}
	if f := m.stats.Load(); f != nil {
		m.statCounters.observe(o, (*f)())
	}
	return nil
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
	if o.MaxHotKeys < 0 {
		errs = append(errs, fmt.Errorf("stampedeotel: negative MaxHotKeys %d", o.MaxHotKeys))
	}
	if o.HotKeyTTL < 0 {
		errs = append(errs, fmt.Errorf("stampedeotel: negative HotKeyTTL %v", o.HotKeyTTL))
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
