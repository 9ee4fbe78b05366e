package stampede

import (
	"context"
	"sync/atomic"
	"time"
)

// SetTTL, called by a Loader with the ctx it was given, sets the TTL of the value it returns,
// or, if it returns ErrNotFound, of the not-found entry, in place of the policy's TTL or
// NegativeTTL. Jitter, early refresh and the stale windows follow the chosen TTL. A TTL of 0 or
// less means "do not cache": the callers that share the load get its value (or ErrNotFound),
// and it is neither written to Redis nor kept in the L1; an instance waiting for the load
// elsewhere then loads for itself.
//
// SetTTL does nothing when ctx is not a loader's, and after the loader returned. The last call
// wins. It is the shape of rueidis's OverrideCacheTTL: a loader that learns the data's
// lifetime from the source (an expiry column, a token's lifetime) can cache it exactly so long.
func SetTTL(ctx context.Context, ttl time.Duration) {
	if t, ok := ctx.Value(chosenTTLKey{}).(*chosenTTL); ok {
		t.ttl.Store(int64(ttl))
		t.set.Store(true)
	}
}

type chosenTTLKey struct{}

// chosenTTL is where a load's SetTTL leaves its choice; the loader may call it from any
// goroutine.
type chosenTTL struct {
	set atomic.Bool
	ttl atomic.Int64
}

// withChosenTTL returns ctx carrying a place for the loader's SetTTL.
func withChosenTTL(ctx context.Context) (context.Context, *chosenTTL) {
	t := new(chosenTTL)
	return context.WithValue(ctx, chosenTTLKey{}, t), t
}

// ttls returns the TTL and negative TTL a load writes under: p's, unless the loader chose.
func (t *chosenTTL) ttls(p *Policy) (ttl, negative time.Duration, chosen bool) {
	if t == nil || !t.set.Load() {
		return p.TTL, p.NegativeTTL, false
	}
	d := time.Duration(t.ttl.Load())
	return d, d, true
}
