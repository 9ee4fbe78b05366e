package stampede

import (
	"context"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/stampede-cache/stampede/internal/envelope"
)

// l1Entry is a value in the in-process cache, with the metadata of the envelope it came from,
// so that an L1 hit decides freshness and early refresh as an L2 hit does; or a tombstone.
type l1Entry[V any] struct {
	value    V
	h        envelope.Header
	keep     time.Duration // how long otter keeps the entry after it is written
	seq      uint64        // the L1's sequence number when it was stored
	size     uint32        // the length of the envelope it was read or written as (0: unknown)
	promoted bool          // a hot key's entry: refreshed early more eagerly
	tomb     bool          // a tombstone: no value, h.Gen is the key's generation floor
}

// mark is what a reader notes before it reads Redis or loads, and passes to store: where the
// L1's sequence of events stood, and when.
type mark struct {
	seq uint64
	at  int64 // Unix nanoseconds, the L1's clock
}

// l1 is the in-process cache: otter, plus generation floors that keep a read that raced a
// write from putting back the value the write replaced.
//
// Every value read from or written to Redis carries the generation it was written under, and
// every write advances the key's generation. A message that key was written or removed at
// generation g replaces the key's entry, unless it is g or newer (this instance's own write,
// whose message came back), with a tombstone: a floor at g that lives floorTTL. A store of an
// older generation than the entry or tombstone in place is refused. So a reader whose GET
// started before a write and returned after the write's message cannot store what the write
// replaced, whichever order the message and the reply arrive in; and this instance's own
// write, whose message often beats its reply, is kept.
//
// Stores and evictions are numbered (seq). A store whose generation is unknown (0: a value
// loaded while Redis failed), or over an entry of unknown generation, is refused when the entry
// in place came after the store's read began. A store whose read began more than floorTTL ago
// is refused when any eviction came since, as a floor laid after it may be gone. Clearing the
// L1 refuses every store whose read began before.
type l1[V any] struct {
	cache    *otter.Cache[string, *l1Entry[V]] // entries are never changed once stored
	clock    otter.Clock                       // the cache's coarse clock, shared with otter
	ttl      time.Duration                     // for entries of keys that are not promoted
	floorTTL time.Duration                     // how long a tombstone outlives its eviction
	seq      atomic.Uint64                     // numbers stores, evictions and clears
	cleared  atomic.Uint64                     // the seq of the last clear
	evicted  atomic.Uint64                     // the seq of the last eviction
	bytes    atomic.Int64                      // the estimated bytes of the entries (see weight)
	index    *hashIndex                        // keys by hash, for coalesced evictions; nil without
}

func newL1[V any](size int, maxBytes int64, ttl, floorTTL time.Duration, clock otter.Clock, log *slog.Logger, hashed bool) (*l1[V], error) {
	l := &l1[V]{clock: clock, ttl: ttl, floorTTL: floorTTL}
	if hashed {
		l.index = new(hashIndex)
	}
	opts := &otter.Options[string, *l1Entry[V]]{
		MaximumSize: size,
		Clock:       clock,
		ExpiryCalculator: otter.ExpiryWritingFunc(func(e otter.Entry[string, *l1Entry[V]]) time.Duration {
			return e.Value.keep
		}),
		OnAtomicDeletion: func(e otter.DeletionEvent[string, *l1Entry[V]]) {
			l.bytes.Add(-int64(weight(e.Key, e.Value)))
			if l.index != nil && e.Cause != otter.CauseReplacement {
				l.index.remove(e.Key)
			}
		},
		Logger: otterLogger{log},
	}
	if maxBytes > 0 {
		opts.MaximumSize, opts.MaximumWeight, opts.Weigher = 0, uint64(maxBytes), weight[V]
	}
	c, err := otter.New(opts)
	if err != nil {
		return nil, err
	}
	l.cache = c
	return l, nil
}

// l1EntryOverhead estimates what an entry costs the L1 beyond its key and its encoded value:
// otter's node, the entry and its decoded value's headers (measured: BenchmarkL1Memory).
const l1EntryOverhead = 200

// weight is the estimated size of an entry in bytes: its key, its envelope's length, and the
// overhead of an entry. The decoded value is assumed to be as large as its encoding.
func weight[V any](key string, e *l1Entry[V]) uint32 {
	return uint32(min(int64(len(key))+int64(e.size)+l1EntryOverhead, math.MaxUint32))
}

// size returns the number of entries (tombstones included) and their estimated bytes.
func (l *l1[V]) size() (entries int, bytes int64) {
	return l.cache.EstimatedSize(), max(l.bytes.Load(), 0)
}

// get returns the entry of key, which the caller must not change, and the time of the lookup,
// in Unix nanoseconds, from the coarse clock otter reads too.
func (l *l1[V]) get(key string) (*l1Entry[V], int64, bool) {
	e, ok := l.cache.GetIfPresent(key)
	return e, l.clock.NowNano(), ok && !e.tomb
}

// mark is what a reader notes before it reads Redis (or loads), and passes to store.
func (l *l1[V]) mark() mark {
	return mark{seq: l.seq.Load(), at: l.clock.NowNano()}
}

// floor returns the generation below which nothing read of key may be served: that of its
// entry or tombstone, 0 if it has none.
func (l *l1[V]) floor(key string) uint64 {
	if e, ok := l.cache.GetEntryQuietly(key); ok {
		return e.Value.h.Gen
	}
	return 0
}

// store keeps e for key until min(ttl, until) (Unix nanoseconds), unless what the L1 holds is
// known to be newer; since was noted (mark) before the read or load that produced e began.
func (l *l1[V]) store(key string, e l1Entry[V], since mark, until int64, ttl time.Duration) {
	now := l.clock.NowNano()
	e.keep = min(ttl, time.Duration(until-now))
	if e.keep <= 0 || since.seq < l.cleared.Load() ||
		now-since.at > int64(l.floorTTL) && l.evicted.Load() > since.seq {
		return
	}
	e.seq = l.seq.Add(1)
	l.cache.Compute(key, func(old *l1Entry[V], found bool) (*l1Entry[V], otter.ComputeOp) {
		if found && newer(old, &e, since) {
			return old, otter.CancelOp
		}
		if !found && l.index != nil && !l.index.admit(key, e.h.Gen, since, now) {
			return old, otter.CancelOp
		}
		l.bytes.Add(int64(weight(key, &e)))
		return &e, otter.WriteOp
	})
}

// newer reports whether old, in the L1, is known to be newer than e, read since.
func newer[V any](old, e *l1Entry[V], since mark) bool {
	if old.h.Gen != 0 && e.h.Gen != 0 {
		return old.h.Gen > e.h.Gen
	}
	return old.seq > since.seq
}

// evict applies a message that key was written or removed at gen (0 if unknown): the entry
// gives way to a tombstone at gen, unless it is that generation or newer.
func (l *l1[V]) evict(key string, gen uint64) {
	seq := l.seq.Add(1)
	l.evicted.Store(seq)
	l.cache.Compute(key, func(old *l1Entry[V], found bool) (*l1Entry[V], otter.ComputeOp) {
		if found && gen != 0 && old.h.Gen >= gen {
			return old, otter.CancelOp
		}
		tomb := &l1Entry[V]{h: envelope.Header{Gen: gen}, keep: l.floorTTL, seq: seq, tomb: true}
		l.bytes.Add(int64(weight(key, tomb)))
		if !found && l.index != nil {
			l.index.add(key)
		}
		return tomb, otter.WriteOp
	})
}

// evictHash applies a coalesced eviction: every key of the L1 with hash h was written or
// removed at gen. Those it holds give way to tombstones as for evict; for those it does not,
// the hash keeps a floor as long as a tombstone (see hashIndex). It returns the keys it held.
func (l *l1[V]) evictHash(h, gen uint64) []string {
	seq := l.seq.Add(1)
	l.evicted.Store(seq)
	now := l.clock.NowNano()
	keys := l.index.floor(h, gen, seq, now, now+int64(l.floorTTL))
	for _, key := range keys {
		l.evict(key, gen)
	}
	return keys
}

// clear drops every entry, for when invalidation messages may have been lost.
func (l *l1[V]) clear() {
	l.cleared.Store(l.seq.Add(1))
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

// useL1 reports whether a call for key under p uses the L1: its policy does, or the key is hot
// and promoted.
func (c *Cache[V]) useL1(key string, p *Policy) bool {
	return c.l1 != nil && (!p.SkipL1 || c.hot.isPromoted(key))
}

// keep stores what was read or written for key in the L1, if the key uses it, for as long as
// p may serve it (and the L1 TTL allows); size is the length of its envelope (0 if it was not
// encoded), and since the L1's mark before the read or write began (l1Now).
func (c *Cache[V]) keep(key string, v V, h envelope.Header, size int, p *Policy, since mark) {
	c.keepAtMost(key, v, h, size, p, since, 0)
}

// keepAtMost is keep, for at most limit if it is not 0.
func (c *Cache[V]) keepAtMost(key string, v V, h envelope.Header, size int, p *Policy, since mark, limit time.Duration) {
	if c.l1 == nil {
		return
	}
	promoted := c.hot.isPromoted(key)
	if p.SkipL1 && !promoted {
		return
	}
	ttl := c.l1.ttl
	if promoted {
		ttl = c.hot.cfg.PromotedL1TTL
	}
	if limit > 0 {
		ttl = min(ttl, limit)
	}
	if !c.subscribed() {
		// No message can evict it: it may serve a replaced value only briefly.
		ttl = min(ttl, unsubscribedL1TTL)
	}
	c.l1.store(key, l1Entry[V]{value: v, h: h, size: uint32(min(size, math.MaxUint32)), promoted: promoted}, since, c.keepUntil(&h, p), ttl)
}

// unsubscribedL1TTL bounds how long the L1 keeps what it stores while no subscription carries
// the messages that evict it: so long may an instance serve a value another instance replaced.
const unsubscribedL1TTL = 100 * time.Millisecond

// l1Now is what a reader notes before it reads Redis or loads, for keep.
func (c *Cache[V]) l1Now() mark {
	if c.l1 == nil {
		return mark{}
	}
	return c.l1.mark()
}

// keepUntil is when an entry stops being of any use under p (Unix nanoseconds).
func (c *Cache[V]) keepUntil(h *envelope.Header, p *Policy) int64 {
	return h.FreshUntil + int64(max(p.StaleWhileRevalidate, p.StaleIfError))
}
