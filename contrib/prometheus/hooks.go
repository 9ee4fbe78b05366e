package stampedeprom

import (
	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/metricsadapter"
)

// Hooks returns the callbacks that record the cache's events; give them to stampede.New
// through stampede.WithHooks, alone or joined with your own hooks by stampede.JoinHooks:
//
//	stampede.WithHooks(stampede.JoinHooks(m.Hooks(), myHooks))
//
// They record:
//
//   - OnLoad: the load's duration in stampede_load_duration_seconds, by result (ok,
//     not_found, or error for any other error, a panic included);
//   - OnLeaseWait: the wait in stampede_lease_wait_duration_seconds;
//   - OnStaleServed: the value's age past its fresh lifetime in stampede_stale_age_seconds;
//   - OnRedisError: one error in stampede_redis_op_errors_total, by operation.
//
// The counts of events are the cache's own counters, and the hot keys its own list, both read
// by Observe. So the other fields are nil: stampede_early_refreshes_total counts early
// refreshes, stampede_hot_key_requests_per_second shows the hot keys, and their hooks would
// carry nothing more.
//
// The callbacks are safe for concurrent use. OnLoad, OnLeaseWait and OnStaleServed update
// histograms resolved in advance, without a lock; OnRedisError looks up the operation's series
// under the vector's read lock (it creates it at the operation's first error); none of them
// allocates.
func (m *Metrics) Hooks() stampede.Hooks {
	return metricsadapter.Hooks(metricsadapter.Recorder{
		Load:        func(r metricsadapter.Result, seconds float64) { m.loads[r].Observe(seconds) },
		LeaseWait:   m.leaseWait.Observe,
		StaleServed: m.staleAge.Observe,
		RedisError:  func(op string) { m.redisOpErrors.WithLabelValues(op).Inc() },
	})
}
