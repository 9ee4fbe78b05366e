package stampedeotel

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
)

// ScopeName is the name of the instrumentation scope, the meter, of the instruments.
const ScopeName = "github.com/stampede-cache/stampede/contrib/otel"

// Metrics records what one stampede.Cache does with OpenTelemetry instruments. All methods are
// safe for concurrent use; the hooks it returns are cheap enough to run on request goroutines.
type Metrics struct {
	cache attribute.KeyValue

	loadDuration  metric.Float64Histogram
	loads         [len(metricsadapter.Results)][]metric.RecordOption // the attributes of each Result
	leaseWait     metric.Float64Histogram
	staleAge      metric.Float64Histogram
	cacheRecord   []metric.RecordOption // the cache attribute alone
	redisOpErrors metric.Int64Counter
	opAttrs       sync.Map // op string -> []metric.AddOption
	hotKeyRate    metric.Float64ObservableGauge

	observed     metricsadapter.Observed // the Source given to Observe, and Options.HotKeyLabel
	statCounters statCounters
	registration metric.Registration
}

// New returns the Metrics of the cache named cache, the value of the cache attribute of every
// measurement, with instruments from the meter ScopeName of mp. It returns an error if mp is
// nil, if cache is empty or not valid UTF-8, if opts are invalid, or if the meter refuses an
// instrument or the callback that observes the counters.
func New(mp metric.MeterProvider, cache string, opts Options) (*Metrics, error) {
	o, err := metricsadapter.Resolve("stampedeotel", "MeterProvider", mp, cache, metricsadapter.Options(opts))
	if err != nil {
		return nil, err
	}
	meter := mp.Meter(ScopeName)
	m := &Metrics{cache: attribute.String("cache", cache)}
	m.observed.HotKeyLabel = o.HotKeyLabel
	for _, r := range metricsadapter.Results {
		set := attribute.NewSet(m.cache, attribute.String("result", r.String()))
		m.loads[r] = []metric.RecordOption{metric.WithAttributeSet(set)}
	}
	m.cacheRecord = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(m.cache))}

	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	m.loadDuration, err = histogram(meter, metricsadapter.LoadDuration, o.LoadBuckets)
	check(err)
	m.leaseWait, err = histogram(meter, metricsadapter.LeaseWaitDuration, o.WaitBuckets)
	check(err)
	m.staleAge, err = histogram(meter, metricsadapter.StaleAge, o.StaleAgeBuckets)
	check(err)
	md := metricsadapter.RedisOpErrors
	m.redisOpErrors, err = meter.Int64Counter(md.OTel, metric.WithDescription(md.Help), metric.WithUnit(md.Unit))
	check(err)
	md = metricsadapter.HotKeyRequests
	m.hotKeyRate, err = meter.Float64ObservableGauge(md.OTel, metric.WithDescription(md.Help), metric.WithUnit(md.Unit))
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
	m.observed.Store(nil)
	return m.registration.Unregister()
}

// observe is the callback of the observable instruments, run at each collection: it reads the
// Source given to Observe, if any, its Stats and its HotKeys once each.
func (m *Metrics) observe(_ context.Context, o metric.Observer) error {
	m.observed.Read(func(s stampede.Stats) { m.statCounters.observe(o, s) }, func(label string, rate float64) {
		o.ObserveFloat64(m.hotKeyRate, rate, metric.WithAttributes(m.cache, attribute.String("key", label)))
	})
	return nil
}

// histogram returns the histogram of md, with buckets advised.
func histogram(meter metric.Meter, md metricsadapter.Metric, buckets []float64) (metric.Float64Histogram, error) {
	return meter.Float64Histogram(md.OTel, metric.WithDescription(md.Help), metric.WithUnit(md.Unit),
		metric.WithExplicitBucketBoundaries(buckets...))
}
