package stampede

import (
	"time"

	"github.com/maypok86/otter/v2"
)

// maxFailures bounds how many failing keys are remembered.
const maxFailures = 10_000

// failures remembers the keys whose last load failed, in this instance or (through the Failed
// message) in another, so that the next attempt waits a short, jittered back-off instead of
// every caller retrying the source at once. Meanwhile callers get the stale value if their
// policy allows (stale-if-error) or the error.
//
// The back-off after a key's first failed load is drawn in [base/2, base); each further
// failure in a row doubles it, up to max (WithFailureBackoff). A zero base turns it off.
type failures struct {
	cache     *otter.Cache[string, failure]
	base, max time.Duration
}

type failure struct {
	err    error
	streak int   // failures in a row
	until  int64 // Unix nanoseconds; no load before
	keep   time.Duration
}

func newFailures(clock otter.Clock, base, max time.Duration) (*failures, error) {
	c, err := otter.New(&otter.Options[string, failure]{
		MaximumSize: maxFailures,
		Clock:       clock,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, failure]) time.Duration {
			return e.Value.keep
		}),
	})
	if err != nil {
		return nil, err
	}
	return &failures{cache: c, base: base, max: max}, nil
}

// record notes a failed load of key at now; rand is uniform in [0, 1). A failure reported by
// another instance (remote) only starts a back-off where none is running: the instance that
// failed hears its own report too, and it must not replace the error or double the back-off.
func (f *failures) record(key string, err error, now int64, rand float64, remote bool) {
	if f.base == 0 {
		return
	}
	f.cache.Compute(key, func(old failure, found bool) (failure, otter.ComputeOp) {
		if remote && found && now < old.until {
			return old, otter.CancelOp
		}
		streak := 1
		if found {
			streak = old.streak + 1
		}
		d := min(f.base<<min(streak-1, 16), f.max)
		d = d/2 + time.Duration(float64(d/2)*rand)
		// The entry outlives the back-off, so that a failure soon after it ends doubles it.
		return failure{err: err, streak: streak, until: now + int64(d), keep: d + f.max}, otter.WriteOp
	})
}

// active returns the error of key's last failure while its back-off lasts.
func (f *failures) active(key string, now int64) (error, bool) {
	e, ok := f.cache.GetIfPresent(key)
	if !ok || now >= e.until {
		return nil, false
	}
	return e.err, true
}

// clear forgets key's failures once it loaded.
func (f *failures) clear(key string) {
	f.cache.Invalidate(key)
}

func (f *failures) close() {
	f.cache.StopAllGoroutines()
}
