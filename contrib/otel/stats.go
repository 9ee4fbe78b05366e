package stampedeotel

import (
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
)

// statCounters are the observable counters of stampede.Stats.
type statCounters struct {
	counters      [metricsadapter.NumCounters]metric.Int64ObservableCounter // by metricsadapter.Counter
	l1, l2, cache metric.ObserveOption                                      // attribute sets
}

func newStatCounters(meter metric.Meter, cache attribute.KeyValue) (statCounters, error) {
	s := statCounters{
		l1:    metric.WithAttributeSet(attribute.NewSet(cache, attribute.String("layer", "l1"))),
		l2:    metric.WithAttributeSet(attribute.NewSet(cache, attribute.String("layer", "l2"))),
		cache: metric.WithAttributeSet(attribute.NewSet(cache)),
	}
	var errs []error
	for c := range metricsadapter.NumCounters {
		md := c.Metric()
		var err error
		s.counters[c], err = meter.Int64ObservableCounter(md.OTel, metric.WithUnit(md.Unit), metric.WithDescription(md.Help))
		if err != nil {
			errs = append(errs, err)
		}
	}
	return s, errors.Join(errs...)
}

// all returns the instruments, for the registration of the callback.
func (s *statCounters) all() []metric.Observable {
	all := make([]metric.Observable, len(s.counters))
	for i, c := range s.counters {
		all[i] = c
	}
	return all
}

func (s *statCounters) observe(o metric.Observer, st stampede.Stats) {
	for _, c := range metricsadapter.Counts(st) {
		attrs := s.cache
		switch c.Layer {
		case "l1":
			attrs = s.l1
		case "l2":
			attrs = s.l2
		}
		o.ObserveInt64(s.counters[c.Counter], int64(min(c.Value, 1<<63-1)), attrs)
	}
}
