package metricsadapter

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// Options are the fields that the Options of each adapter have, in the same order and of the
// same types, so that an adapter converts its own: metricsadapter.Options(opts). Each adapter
// documents them in the terms of its library.
type Options struct {
	LoadBuckets     []float64
	WaitBuckets     []float64
	StaleAgeBuckets []float64
	HotKeyLabel     func(key string) string
}

// DefaultLoadBuckets returns the default buckets of load and lease wait latency, in seconds:
// database lookups, up to the cache's default load timeout of 10s.
func DefaultLoadBuckets() []float64 {
	return []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
}

// DefaultStaleAgeBuckets returns the default buckets of the age of stale values, in seconds.
func DefaultStaleAgeBuckets() []float64 {
	return []float64{.1, .5, 1, 5, 10, 30, 60, 300, 900, 3600}
}

// Resolve checks the arguments of an adapter's New, and returns its options with the defaults
// in place of nil buckets (WaitBuckets default to the default LoadBuckets). Its errors start
// with pkg, the adapter's package name: dest, where the metrics go (a destName: Registerer,
// MeterProvider), must not be nil; the cache name must be non-empty valid UTF-8; and buckets
// that are not nil must be non-empty and strictly increasing.
func Resolve(pkg, destName string, dest any, cache string, o Options) (Options, error) {
	if dest == nil {
		return Options{}, fmt.Errorf("%s: nil %s", pkg, destName)
	}
	if cache == "" || !utf8.ValidString(cache) {
		return Options{}, fmt.Errorf("%s: cache name %q must be non-empty valid UTF-8", pkg, cache)
	}
	var errs []error
	for _, b := range []struct {
		name    string
		buckets []float64
	}{{"LoadBuckets", o.LoadBuckets}, {"WaitBuckets", o.WaitBuckets}, {"StaleAgeBuckets", o.StaleAgeBuckets}} {
		if b.buckets != nil && !increasing(b.buckets) {
			errs = append(errs, fmt.Errorf("%s: %s %v must be non-empty and strictly increasing", pkg, b.name, b.buckets))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Options{}, err
	}
	if o.LoadBuckets == nil {
		o.LoadBuckets = DefaultLoadBuckets()
	}
	if o.WaitBuckets == nil {
		o.WaitBuckets = DefaultLoadBuckets()
	}
	if o.StaleAgeBuckets == nil {
		o.StaleAgeBuckets = DefaultStaleAgeBuckets()
	}
	return o, nil
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
