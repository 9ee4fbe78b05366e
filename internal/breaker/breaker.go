// Package breaker stops calling a dependency that keeps failing, for a short while, and then
// lets one call through to see whether it is back.
package breaker

import (
	"sync/atomic"
	"time"
)

// A Breaker is closed (calls go through) until Threshold calls in a row fail; then it is open
// for Cooldown (calls are refused at once), and then lets one call through: its success closes
// the breaker, its failure opens it for another Cooldown. A Breaker is safe for concurrent use,
// and a call allowed while it is closed costs two atomic loads.
type Breaker struct {
	threshold int32
	cooldown  int64 // nanoseconds

	failures atomic.Int32 // in a row
	openedAt atomic.Int64 // Unix nanoseconds when it opened, 0 while closed
	probing  atomic.Bool  // a call is testing the dependency after a cooldown
}

// New returns a closed Breaker.
func New(threshold int, cooldown time.Duration) *Breaker {
	return &Breaker{threshold: int32(threshold), cooldown: int64(cooldown)}
}

// Allow reports whether a call may go ahead at now (Unix nanoseconds). When it returns true
// for the probe of an open breaker, the caller must report the call's outcome.
func (b *Breaker) Allow(now int64) bool {
	opened := b.openedAt.Load()
	if opened == 0 {
		return true
	}
	if now-opened < b.cooldown {
		return false
	}
	return b.probing.CompareAndSwap(false, true)
}

// Success reports a call that worked: the breaker closes.
func (b *Breaker) Success() {
	if b.failures.Load() != 0 || b.openedAt.Load() != 0 {
		b.failures.Store(0)
		b.openedAt.Store(0)
		b.probing.Store(false)
	}
}

// Failure reports a call that failed at now; it reports whether the breaker opened because of it.
func (b *Breaker) Failure(now int64) bool {
	n := b.failures.Add(1)
	if b.probing.Load() || n >= b.threshold && b.openedAt.Load() == 0 {
		b.openedAt.Store(now)
		b.probing.Store(false)
		return true
	}
	return false
}

// Abandon reports an allowed call that ended without an outcome (its caller gave up): a probe
// it was frees the way for the next one.
func (b *Breaker) Abandon() {
	if b.openedAt.Load() != 0 {
		b.probing.Store(false)
	}
}

// Open reports whether the breaker refuses calls now.
func (b *Breaker) Open(now int64) bool {
	opened := b.openedAt.Load()
	return opened != 0 && (now-opened < b.cooldown || b.probing.Load())
}
