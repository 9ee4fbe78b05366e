package stampedeotel

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

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
//   - OnLoad: the load's duration in stampede.load.duration, by result (ok, not_found, or
//     error for any other error, a panic included);
//   - OnLeaseWait: the wait in stampede.lease.wait.duration;
//   - OnStaleServed: the value's age past its fresh lifetime in stampede.stale.age;
//   - OnRedisError: one error in stampede.redis.op_errors, by operation.
//
// The counts of events are the cache's own counters, and the hot keys its own list, both
// observed through Observe. So the other fields are nil: stampede.early_refreshes counts early
// refreshes, stampede.hot_key.requests shows the hot keys, and their hooks would carry nothing
// more.
//
// The callbacks are safe for concurrent use and record with context.Background(), as the
// cache gives them no context. They only record to their instruments, with attribute sets
// built in advance (for Redis errors, at the first error of each operation).
func (m *Metrics) Hooks() stampede.Hooks {
	ctx := context.Background()
	return metricsadapter.Hooks(metricsadapter.Recorder{
		Load: func(r metricsadapter.Result, seconds float64) {
			m.loadDuration.Record(ctx, seconds, m.loads[r]...)
		},
		LeaseWait:   func(seconds float64) { m.leaseWait.Record(ctx, seconds, m.cacheRecord...) },
		StaleServed: func(seconds float64) { m.staleAge.Record(ctx, seconds, m.cacheRecord...) },
		RedisError:  m.onRedisError,
	})
}

// onRedisError counts a failed Redis call of operation op, with the attribute set of op, made
// at its first error.
func (m *Metrics) onRedisError(op string) {
	opts, ok := m.opAttrs.Load(op)
	if !ok {
		set := attribute.NewSet(m.cache, attribute.String("op", op))
		opts, _ = m.opAttrs.LoadOrStore(op, []metric.AddOption{metric.WithAttributeSet(set)})
	}
	m.redisOpErrors.Add(context.Background(), 1, opts.([]metric.AddOption)...)
}
