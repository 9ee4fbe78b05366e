package stampede

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/stampede-cache/stampede/internal/envelope"
)

// l1Entry is a value in the in-process cache, with the metadata of the envelope it came from,
// so that an L1 hit decides freshness and early refresh as an L2 hit does.
type l1Entry[V any] struct {
	value    V
	h        envelope.Header
	keep     time.Duration // how long otter keeps the entry after it is written
	promoted bool          // a hot key's entry: refreshed early more eagerly
}

// l1Stripes is the number of eviction epochs; a power of two.
const l1Stripes = 256

// l1 is the in-process cache: otter, plus the epochs that keep a read that raced an eviction
// from putting back the value the eviction removed.
//
// An eviction (an invalidation message) first advances the epoch of the key's stripe and then
// deletes the key. A reader notes the epoch before it reads Redis, and stores what it read only
// if the epoch has not moved, checking again after the store. Either the eviction's delete comes
// after the store and removes it, or the reader sees the new epoch and removes its own store.
type l1[V any] struct {
	cache  *otter.Cache[string, *l1Entry[V]] // entries are never changed once stored
	clock  otter.Clock                       // the cache's coarse clock, shared with otter
	ttl    time.Duration                     // for entries of keys that are not promoted
	seed   maphash.Seed
	epochs [l1Stripes]atomic.Uint64

	mu      sync.Mutex
	writing map[string]*write // guarded by mu: this instance's writes of a key in progress
}

// write is this instance's write of a key in progress (a fill or a Set): the Filled messages of
// the key that it holds back, and the newest of them.
type write struct {
	gen     uint64 // the generation it writes; 0 if unknown (a Set, or two writes at once)
	writers int
	skipped uint64 // the newest generation of a message held back
}

func newL1[V any](size int, ttl time.Duration, clock otter.Clock, log *slog.Logger) (*l1[V], error) {
	c, err := otter.New(&otter.Options[string, *l1Entry[V]]{
		MaximumSize: size,
		Clock:       clock,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *l1Entry[V]]) time.Duration {
			return e.Value.keep
		}),
		Logger: otterLogger{log},
	})
	if err != nil {
		return nil, err
	}
	return &l1[V]{cache: c, clock: clock, ttl: ttl, seed: maphash.MakeSeed(), writing: make(map[string]*write)}, nil
}

// get returns the entry of key, which the caller must not change, and the time of the lookup,
// in Unix nanoseconds, from the coarse clock otter reads too.
func (l *l1[V]) get(key string) (*l1Entry[V], int64, bool) {
	e, ok := l.cache.GetIfPresent(key)
	return e, l.clock.NowNano(), ok
}

func (l *l1[V]) stripe(key string) *atomic.Uint64 {
	return &l.epochs[maphash.String(l.seed, key)&(l1Stripes-1)]
}

// epoch returns what a reader of key notes before it reads Redis.
func (l *l1[V]) epoch(key string) uint64 {
	return l.stripe(key).Load()
}

// store keeps e for key until min(ttl, until) (Unix nanoseconds), unless an eviction of its
// stripe came after epoch was noted, or the L1 holds a newer generation of the key.
func (l *l1[V]) store(key string, e l1Entry[V], now, until int64, epoch uint64, ttl time.Duration) {
	e.keep = min(ttl, time.Duration(until-now))
	if e.keep <= 0 {
		return
	}
	h := e.h
	s := l.stripe(key)
	if s.Load() != epoch {
		return
	}
	l.cache.Compute(key, func(old *l1Entry[V], found bool) (*l1Entry[V], otter.ComputeOp) {
		if found && h.Gen != 0 && old.h.Gen > h.Gen {
			return old, otter.CancelOp
		}
		return &e, otter.WriteOp
	})
	if s.Load() != epoch {
		l.remove(key, h.Gen+1)
	}
}

// expect announces that this instance writes key, at generation gen if known (a fill writes
// its fence plus one) or 0. Until written, the Filled messages of the key that may be the
// write's own are held back: the write's message often reaches the instance before the write's
// reply, and would otherwise evict the value the instance is about to keep.
func (l *l1[V]) expect(key string, gen uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.writing[key]; ok {
		w.writers++
		w.gen = 0 // two writes at once: hold back every message of the key
		return
	}
	l.writing[key] = &write{gen: gen, writers: 1}
}

// written ends what expect began, once the write kept its value in the L1 (or did not), at gen
// (0 if the write failed). The messages held back are applied now: the newest generation among
// them and gen evicts what is older. That is a no-op if the write's own entry is in place and
// no newer write came, and otherwise removes what those messages would have.
func (l *l1[V]) written(key string, gen uint64) {
	l.mu.Lock()
	if w, ok := l.writing[key]; ok {
		if gen != 0 {
			gen = max(gen, w.skipped)
		}
		if w.writers--; w.writers == 0 {
			delete(l.writing, key)
		}
	}
	l.mu.Unlock()
	l.evict(key, gen)
}

// filled applies a message that key was written at gen by a fill or a Set: like evict, unless
// a write of this instance holds it back.
func (l *l1[V]) filled(key string, gen uint64) {
	l.mu.Lock()
	w, ok := l.writing[key]
	if ok && (w.gen == 0 || w.gen == gen) {
		w.skipped = max(w.skipped, gen)
	}
	l.mu.Unlock()
	if ok && (w.gen == 0 || w.gen == gen) {
		return
	}
	l.evict(key, gen)
}

// evict applies a message that key was written or removed at gen: the entry goes unless it is
// that generation or newer (the instance's own write, whose message came back to it). A
// message that changes nothing does not advance the epoch, so reads in flight still store.
func (l *l1[V]) evict(key string, gen uint64) {
	if e, ok := l.cache.GetEntryQuietly(key); ok && gen != 0 && e.Value.h.Gen >= gen {
		return
	}
	l.stripe(key).Add(1)
	l.remove(key, gen)
}

func (l *l1[V]) remove(key string, gen uint64) {
	l.cache.ComputeIfPresent(key, func(old *l1Entry[V]) (*l1Entry[V], otter.ComputeOp) {
		if gen != 0 && old.h.Gen >= gen {
			return old, otter.CancelOp
		}
		return old, otter.InvalidateOp
	})
}

// clear drops every entry, for when invalidation messages may have been lost.
func (l *l1[V]) clear() {
	for i := range l.epochs {
		l.epochs[i].Add(1)
	}
	l.cache.InvalidateAll()
}

func (l *l1[V]) close() {
	l.cache.StopAllGoroutines()
}

// otterLogger sends otter's warnings to the cache's logger.
type otterLogger struct{ log *slog.Logger }

func (o otterLogger) Warn(ctx context.Context, msg string, err error) {
	o.log.WarnContext(ctx, "stampede: L1: "+msg, "err", err)
}

func (o otterLogger) Error(ctx context.Context, msg string, err error) {
	o.log.ErrorContext(ctx, "stampede: L1: "+msg, "err", err)
}
