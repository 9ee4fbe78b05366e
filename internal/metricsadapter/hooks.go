package metricsadapter

import (
	"time"

	"github.com/stampede-cache/stampede"
)

// A Recorder records a cache's events in an adapter's instruments. Its functions run on
// request goroutines: they must be safe for concurrent use, and should not allocate.
type Recorder struct {
	// Load records a load of the given result that took seconds.
	Load func(result Result, seconds float64)
	// LeaseWait records a wait of seconds for a load another instance held the lease of.
	LeaseWait func(seconds float64)
	// StaleServed records a stale value served seconds past its fresh lifetime.
	StaleServed func(seconds float64)
	// RedisError records one failed Redis call of operation op.
	RedisError func(op string)
}

// Hooks returns the hooks that record to r: OnLoad, OnLeaseWait, OnStaleServed and
// OnRedisError. The other fields are nil: the cache counts those events itself, and reports its
// hot keys through HotKeys, which Observed reads. The hooks add no allocation to r's.
func Hooks(r Recorder) stampede.Hooks {
	return stampede.Hooks{
		OnLoad: func(_ string, took time.Duration, err error) {
			r.Load(ResultOf(err), took.Seconds())
		},
		OnLeaseWait:   func(_ string, waited time.Duration) { r.LeaseWait(waited.Seconds()) },
		OnStaleServed: func(_ string, age time.Duration) { r.StaleServed(age.Seconds()) },
		OnRedisError:  func(op, _ string, _ error) { r.RedisError(op) },
	}
}
