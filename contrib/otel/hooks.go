package stampedeotel

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stampede-cache/stampede"
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
	return stampede.Hooks{
		OnLoad:        m.onLoad,
		OnLeaseWait:   m.onLeaseWait,
		OnStaleServed: m.onStaleServed,
		OnRedisError:  m.onRedisError,
	}
}

func (m *Metrics) onLoad(_ string, took time.Duration, err error) {
	opts := m.loadOK
	switch {
	case err == nil:
	case errors.Is(err, stampede.ErrNotFound):
		opts = m.loadNotFound
	default:
		opts = m.loadError
	}
	m.loadDuration.Record(context.Background(), took.Seconds(), opts...)
}

func (m *Metrics) onLeaseWait(_ string, waited time.Duration) {
	m.leaseWait.Record(context.Background(), waited.Seconds(), m.cacheRecord...)
}

func (m *Metrics) onStaleServed(_ string, age time.Duration) {
	m.staleAge.Record(context.Background(), age.Seconds(), m.cacheRecord...)
}

func (m *Metrics) onRedisError(op, _ string, _ error) {
	opts, ok := m.opAttrs.Load(op)
	if !ok {
		set := attribute.NewSet(m.cache, attribute.String("op", op))
		opts, _ = m.opAttrs.LoadOrStore(op, []metric.AddOption{metric.WithAttributeSet(set)})
	}
	m.redisOpErrors.Add(context.Background(), 1, opts.([]metric.AddOption)...)
}
