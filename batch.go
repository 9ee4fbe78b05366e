package stampede

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/flight"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// A BatchLoader loads the values of keys from the source of truth. Keys it leaves out of the
// map do not exist (cached as not-found, like ErrNotFound from a Loader). An error fails every
// key it was asked for.
//
// It runs as a Loader does: its ctx keeps the caller's values but not its cancellation, ends at
// the load timeout or Close, and a BatchLoader that does not return by then is abandoned. A
// panic fails every key of the call with a *PanicError. SetTTL, called with its ctx, sets the
// TTL of every key of the call. Keys it returns that it was not asked for are ignored (and
// their number logged). It is called with at most WithMaxBatch keys, never with a key twice.
type BatchLoader[V any] func(ctx context.Context, keys []string) (map[string]V, error)

// BatchError lists the keys of a GetMany, SetMany, DeleteMany or InvalidateMany that failed,
// each with its error. errors.Is and errors.As look through every one of them.
type BatchError struct {
	// Errs maps each key that failed to its error.
	Errs map[string]error
}

// Error returns one line: how many keys failed, and the first few of them, sorted.
func (e *BatchError) Error() string {
	keys := make([]string, 0, len(e.Errs))
	for k := range e.Errs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	fmt.Fprintf(&b, "stampede: %d keys failed", len(keys))
	for i, k := range keys {
		if i == 3 {
			b.WriteString("; ...")
			break
		}
		fmt.Fprintf(&b, "; %q: %v", k, e.Errs[k])
	}
	return b.String()
}

// Unwrap returns the error of each key.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, 0, len(e.Errs))
	for _, err := range e.Errs {
		errs = append(errs, err)
	}
	return errs
}

// batchErr returns errs as a *BatchError, or nil if it is empty.
func batchErr(errs map[string]error) error {
	if len(errs) == 0 {
		return nil
	}
	return &BatchError{Errs: errs}
}

// item is one key of a GetMany, from its read to its result.
type item[V any] struct {
	key string
	p   *Policy
	obs *observation[V] // what the reads found, for the flight; nil until a read misses
	// fresh and gen are the fresh-until and generation of the value served, 0 if none; due is
	// set when it is due for a refresh.
	fresh int64
	gen   uint64
	took  time.Duration // the value's load time, XFetch's delta
	due   bool
	// The result, once done: the value, or an error (ErrNotFound: absent, no failure), and the
	// header of a stale value served because the load failed.
	done  bool
	value V
	err   error
	stale *envelope.Header
}

// o returns it's observation, created at its first use: a key served by the L1 or Redis
// needs none.
func (it *item[V]) o() *observation[V] {
	if it.obs == nil {
		it.obs = new(observation[V])
	}
	return it.obs
}

func (it *item[V]) set(r result[V]) {
	it.done, it.value, it.err, it.stale = true, r.value, r.err, r.stale
}

// GetMany returns the values of keys that exist. A key that is not found is absent from the
// map. Keys whose load failed are absent too, and the error says which (errors.Join of per-key
// errors, or a type that lists them).
//
// It is Get for many keys at once, with the same policy per key (fresh, stale, negative
// entries, the failure back-off, fencing), in the fewest round trips: the L1 first; then one
// pipelined read of the others (an MGET on a single node, an MGET per slot on a cluster, one
// round trip per node); then, for the misses, one lease script per slot, and one call of load
// for the keys this instance won (in chunks of at most WithMaxBatch), while keys whose lease
// another instance holds are awaited as Get awaits them. A key already being loaded on this
// instance (by Get or another GetMany) waits for that load instead of loading twice. A key
// listed twice is read once.
//
// The error is a *BatchError that maps each failed key to its error: ErrInvalidKey for a key
// Get would refuse (the other keys are served), a load's error (every key of a failed batch
// load fails; a stale value is returned instead where StaleIfError allows), ErrWaitTimeout.
// With no keys, GetMany returns an empty map and does no I/O. When ctx ends first, GetMany
// returns the values it had and ctx.Err(); the loads go on for the others. ErrNilLoader and
// ErrClosed are returned as they are.
func (c *Cache[V]) GetMany(ctx context.Context, keys []string, load BatchLoader[V], opts ...GetOption) (map[string]V, error) {
	if c.life.closed.Load() {
		return nil, ErrClosed
	}
	if load == nil {
		return nil, ErrNilLoader
	}
	out := make(map[string]V, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	items, errs := c.batchItems(keys, opts)
	// 1. The L1, as Get reads it.
	pending := c.manyFromL1(ctx, items, load)
	// 2. Redis: the keys the L1 did not serve, in one pipelined round trip per node.
	if len(pending) > 0 {
		pending = c.manyFromL2(ctx, pending, load)
	}
	// A key due for refresh takes along the keys of the call that are soon due too.
	c.refreshSiblings(ctx, items, load)
	// 3. The misses: one flight per key in this instance; the keys of new flights are leased
	// and loaded together.
	var ctxErr error
	if len(pending) > 0 {
		ctxErr = c.manyMisses(ctx, pending, load)
	}
	now := time.Now().UnixNano()
	for i := range items {
		it := &items[i]
		if !it.done {
			continue
		}
		switch {
		case it.err == nil:
			out[it.key] = it.value
			if it.stale != nil {
				c.servedStaleCtx(ctx, it.key, it.stale.FreshUntil, now)
			}
		case !errors.Is(it.err, ErrNotFound):
			if errs == nil {
				errs = make(map[string]error)
			}
			errs[it.key] = it.err
		}
	}
	if ctxErr != nil {
		return out, ctxErr
	}
	return out, batchErr(errs)
}

// batchItems returns the valid keys of a GetMany, each once, with its policy, and the errors
// of the others.
func (c *Cache[V]) batchItems(keys []string, opts []GetOption) ([]item[V], map[string]error) {
	items := make([]item[V], 0, len(keys))
	var errs map[string]error
	fail := func(key string, err error) {
		if errs == nil {
			errs = make(map[string]error)
		}
		errs[key] = err
	}
	var seen map[string]struct{}
	if len(keys) > 1 {
		seen = make(map[string]struct{}, len(keys))
	}
	for _, key := range keys {
		if seen != nil {
			if _, dup := seen[key]; dup {
				continue
			}
			seen[key] = struct{}{}
		}
		if err := c.check(key); err != nil {
			fail(key, err)
			continue
		}
		p := &c.policy
		if c.policyFunc != nil || len(opts) > 0 {
			q, err := c.policyFor(key, opts)
			if err != nil {
				fail(key, err)
				continue
			}
			p = &q
		}
		items = append(items, item[V]{key: key, p: p})
	}
	return items, errs
}

// judgeMany is judge for a key read by GetMany. When its refreshes are merged (see
// WithRefreshBatch), a batch is refreshed early as one: a fresh value is not judged for early
// refresh here, and refreshSiblings draws XFetch once for the call, for its key that expires
// first. (Judged per key, 100 keys read together would draw 100 times, and the batch would be
// refreshed far earlier than any one key would.)
func (c *Cache[V]) judgeMany(key string, h *envelope.Header, now int64, p *Policy) verdict {
	if c.batch.refreshWindow > 0 && p.EarlyRefresh > 0 {
		q := *p
		q.EarlyRefresh = 0
		return c.judge(h, now, &q, false)
	}
	return c.judge(h, now, p, c.hot.isPromoted(key))
}

// manyFromL1 serves the keys the L1 holds, and returns the others.
func (c *Cache[V]) manyFromL1(ctx context.Context, items []item[V], load BatchLoader[V]) []*item[V] {
	pending := make([]*item[V], 0, len(items))
	for i := range items {
		it := &items[i]
		if c.useL1(it.key, it.p) {
			if e, now, ok := c.l1.get(it.key); ok {
				switch c.judgeMany(it.key, &e.h, now, it.p) {
				case serve:
					c.count(statL1Hits, it.key)
					it.set(entryResult(e))
					it.fresh, it.gen, it.took = e.h.FreshUntil, e.h.Gen, e.h.LoadTime
					continue
				case serveAndRefresh:
					c.count(statL1Hits, it.key)
					c.refreshManyInBackground(ctx, it.key, it.p, load, &e.h, now)
					it.set(entryResult(e))
					it.fresh, it.gen, it.took, it.due = e.h.FreshUntil, e.h.Gen, e.h.LoadTime, c.expiring(&e.h)
					continue
				case fallback:
					it.o().stale = e
				}
			}
		}
		pending = append(pending, it)
	}
	return pending
}

// expiring reports whether a value due for refresh is so because of its age, not because it was
// invalidated (which concerns it alone: its siblings are not refreshed with it).
func (c *Cache[V]) expiring(h *envelope.Header) bool {
	return !h.Invalidated() && h.WrittenAt >= c.topo.staleBefore.Load()
}

func entryResult[V any](e *l1Entry[V]) result[V] {
	v, err := e.result()
	return result[V]{value: v, err: err}
}

// manyFromL2 reads the pending keys from Redis in one pipeline: an MGET of their values (one
// per slot on a cluster), and for replicated keys a GET and PTTL of a replica. It serves what
// it may, and returns the keys left for the flights. A replica that misses is followed by the
// primary in a second round trip, as Get does.
func (c *Cache[V]) manyFromL2(ctx context.Context, pending []*item[V], load BatchLoader[V]) []*item[V] {
	since := c.l1Now()
	var primary, replicated []*item[V]
	for _, it := range pending {
		if n := c.replicasOf(it.key, it.p); n > 0 {
			o := it.o()
			o.since, o.replica = since, c.replicaKey(it.key, n)
			replicated = append(replicated, it)
		} else {
			primary = append(primary, it)
		}
	}
	left := pending[:0:0]
	if len(replicated) > 0 {
		for _, it := range c.readReplicas(ctx, replicated, load) {
			primary = append(primary, it)
		}
	}
	if len(primary) == 0 {
		return left
	}
	raws, err := c.mget(ctx, primary)
	now := time.Now().UnixNano() // after the read: what it returned is judged as of its reply
	for i, it := range primary {
		if err != nil && err[i] != nil {
			if ctx.Err() != nil {
				it.set(result[V]{err: ctx.Err()})
				continue
			}
			o := it.o()
			o.redisDown, o.since = true, since
			left = append(left, it)
			continue
		}
		if raw := raws[i]; raw != nil && c.serveRead(ctx, it, raw, now, since, load) {
			continue
		}
		it.o().since = since
		left = append(left, it)
	}
	return left
}

// serveRead judges an envelope read from Redis for it, as readL2 does: it serves it (true), or
// records in its observation what the flight needs to know.
func (c *Cache[V]) serveRead(ctx context.Context, it *item[V], raw []byte, now int64, since mark, load BatchLoader[V]) bool {
	e, ok := c.decode(it.key, raw)
	if !ok {
		o := it.o()
		o.seen = seenGen(raw)
		o.foreign = c.version != "" && c.foreign(it.key, raw, it.p)
		return false
	}
	switch v := c.judgeMany(it.key, &e.h, now, it.p); v {
	case serve, serveAndRefresh:
		c.count(statL2Hits, it.key)
		c.keep(it.key, e.value, e.h, len(raw), it.p, since)
		if v == serveAndRefresh {
			c.refreshManyInBackground(ctx, it.key, it.p, load, &e.h, now)
		}
		if it.obs != nil && it.obs.replica != "" && v == serve {
			c.copyToReplica(it.obs.replica, raw, e.h, it.p)
		}
		it.set(entryResult(&e))
		it.fresh, it.gen, it.took, it.due = e.h.FreshUntil, e.h.Gen, e.h.LoadTime, v == serveAndRefresh && c.expiring(&e.h)
		return true
	case fallback:
		it.o().stale = escape(e)
	}
	it.o().seen = seenGen(raw)
	return false
}

// mget reads the values of items: one MGET on a single node; on a cluster, one MGET per slot,
// pipelined (one round trip per node). It returns each item's envelope (nil if none) and error
// (errs is nil when there is none).
func (c *Cache[V]) mget(ctx context.Context, items []*item[V]) ([][]byte, []error) {
	raws := make([][]byte, len(items))
	var errs []error // nil while every read succeeds
	fail := func(err error) {
		errs = make([]error, len(items))
		for i := range errs {
			errs[i] = err
		}
	}
	if !c.breaker.Allow(time.Now().UnixNano()) {
		fail(errCircuitOpen)
		return raws, errs
	}
	rctx, cancel := c.redisContext(ctx)
	defer cancel()
	rks := valueKeys(c.namespace, items)
	var groups [][]int // of a cluster's slots
	if _, cluster := c.cluster(); cluster {
		groups = scripts.GroupBySlot(len(items), func(i int) string { return rks[i] }, true)
	}
	var err error
	if len(groups) <= 1 {
		var vals []any
		vals, err = c.client.MGet(rctx, rks...).Result()
		if err == nil {
			fillRaws(raws, nil, vals)
		}
	} else {
		cmds := make([]*redis.SliceCmd, len(groups))
		_, err = c.client.Pipelined(rctx, func(p redis.Pipeliner) error {
			for g, idx := range groups {
				gk := make([]string, len(idx))
				for j, i := range idx {
					gk[j] = rks[i]
				}
				cmds[g] = p.MGet(rctx, gk...)
			}
			return nil
		})
		for g, idx := range groups {
			if gerr := cmds[g].Err(); gerr != nil {
				if errs == nil {
					errs = make([]error, len(items))
				}
				for _, i := range idx {
					errs[i] = gerr
				}
				continue
			}
			fillRaws(raws, idx, cmds[g].Val())
		}
	}
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		c.breaker.Success()
		c.redisAnswered()
	case ctx.Err() != nil:
		c.breaker.Abandon()
		fail(err)
	default:
		c.redisFailed("mget", "", err)
		if len(groups) <= 1 {
			fail(err)
		}
	}
	return raws, errs
}

// MGet is bounded as every call of a deadlineClient is.
func (d deadlineClient) MGet(ctx context.Context, keys ...string) *redis.SliceCmd {
	return bounded(ctx, func() *redis.SliceCmd { return d.redisClient.MGet(ctx, keys...) }, func(err error) *redis.SliceCmd {
		cmd := redis.NewSliceCmd(ctx, "mget")
		cmd.SetErr(err)
		return cmd
	})
}

// fillRaws stores an MGET's replies, in the order of idx (or of raws, if idx is nil), in raws. The bytes are the strings'
// own, not a copy: nothing writes to an envelope read from Redis (decode parses it, the codec
// must not keep it, a copy to a replica sends it), and a batch of 100 keys saves 100 copies.
func fillRaws(raws [][]byte, idx []int, vals []any) {
	for j := range vals {
		i := j
		if idx != nil {
			i = idx[j]
		}
		if i < len(raws) {
			if s, ok := vals[j].(string); ok && s != "" {
				raws[i] = unsafe.Slice(unsafe.StringData(s), len(s))
			}
		}
	}
}

// valueKeys returns the Redis key of each item's value (ValueKey), built in one buffer: one
// allocation for the batch rather than one per key.
func valueKeys[V any](namespace string, items []*item[V]) []string {
	n := 0
	for _, it := range items {
		n += len(namespace) + len(it.key) + 4
	}
	buf := make([]byte, 0, n)
	rks := make([]string, len(items))
	for i, it := range items {
		start := len(buf)
		buf = append(buf, namespace...)
		buf = append(buf, ":{"...)
		if it.key[0] == '}' || it.key[0] == 0 {
			buf = append(buf, 0) // as ValueKey escapes it
		}
		buf = append(buf, it.key...)
		buf = append(buf, '}')
		rks[i] = unsafe.String(&buf[start], len(buf)-start)
	}
	return rks
}

// readReplicas reads a replica of each replicated item (GET and PTTL, pipelined), serves those
// it may, and returns the others, whose primary is to be read.
func (c *Cache[V]) readReplicas(ctx context.Context, items []*item[V], load BatchLoader[V]) []*item[V] {
	var misses []*item[V]
	if !c.breaker.Allow(time.Now().UnixNano()) {
		return items
	}
	rctx, cancel := c.redisContext(ctx)
	gets := make([]*redis.StringCmd, len(items))
	ttls := make([]*redis.DurationCmd, len(items))
	_, err := c.client.Pipelined(rctx, func(p redis.Pipeliner) error {
		for i, it := range items {
			gets[i], ttls[i] = p.Get(rctx, it.obs.replica), p.PTTL(rctx, it.obs.replica)
		}
		return nil
	})
	cancel()
	if err != nil && !errors.Is(err, redis.Nil) && ctx.Err() == nil {
		c.redisFailed("get", "", err)
	}
	for i, it := range items {
		raw, gerr := gets[i].Bytes()
		if gerr == nil {
			if e, ok := c.decode(it.key, raw); ok && (c.l1 == nil || e.h.Gen >= c.l1.floor(it.key)) {
				now := time.Now().UnixNano()
				switch v := c.judgeMany(it.key, &e.h, now, it.p); v {
				case serve, serveAndRefresh:
					c.stats.Add(statReplicaHits)
					c.count(statL2Hits, it.key)
					c.keepAtMost(it.key, e.value, e.h, len(raw), it.p, it.obs.since, max(ttls[i].Val(), time.Millisecond))
					if v == serveAndRefresh {
						c.refreshManyInBackground(ctx, it.key, it.p, load, &e.h, now)
					}
					it.set(entryResult(&e))
					continue
				}
			}
		}
		c.stats.Add(statReplicaMisses)
		misses = append(misses, it)
	}
	return misses
}

// manyMisses finds the values of the keys that neither the L1 nor Redis could serve, as Get's
// flights do: a key whose load failed moments ago shares its error (or a stale value); a key
// with a flight on this instance (a Get's, or another GetMany's) waits for that flight; the
// others become flights of this call, leased and loaded together on a goroutine of the cache
// (fetchMany), which goes on for the callers that board them when this caller's ctx ends. It
// returns ctx.Err() if ctx ended before every key was done.
func (c *Cache[V]) manyMisses(ctx context.Context, pending []*item[V], load BatchLoader[V]) error {
	now := time.Now().UnixNano()
	var lead []*item[V]
	var lines []*flight.Line[result[V]]
	var board []*item[V]
	for _, it := range pending {
		if it.done {
			continue
		}
		c.count(statMisses, it.key)
		if err, ok := c.failures.active(it.key, now); ok {
			it.set(c.failed(err, *it.o()))
			continue
		}
		if l, ok := c.flights.Lead(it.key); ok {
			lead = append(lead, it)
			lines = append(lines, l)
		} else {
			board = append(board, it)
		}
	}
	// Keys in flight here: board the flight's next call, which finds the value the running one
	// wrote (or, if it failed, loads this key alone).
	done := make(chan struct{}, len(board)+1)
	boarded := make([]result[V], len(board))
	for j, it := range board {
		single, pol, obs := one(load), *it.p, *it.o()
		// It ends when the flight does or ctx ends (Board's bound), and writes only boarded[j],
		// which this caller reads after it sent done.
		go func() {
			boarded[j] = c.flight(ctx, it.key, &pol, single, obs)
			done <- struct{}{}
		}()
	}
	waiting := len(board)
	// The keys this call leads: fetchMany on a goroutine of the cache, detached from ctx, writes
	// only results, which this caller reads after it sent done.
	results := make([]result[V], len(lead))
	if len(lead) > 0 {
		ran := c.life.goTracked(func() {
			fctx, cancel := c.life.detach(ctx)
			defer cancel()
			c.fetchMany(fctx, lead, results, load)
			for _, l := range lines {
				c.flights.End(l)
			}
			if c.life.closed.Load() {
				for i := range results {
					if results[i].err != nil {
						results[i].err = ErrClosed // cancelled by Close, not by a caller
					}
				}
			}
			done <- struct{}{}
		})
		if ran {
			waiting++
		} else {
			for i := range lead {
				c.flights.End(lines[i])
				results[i] = result[V]{err: ErrClosed}
			}
		}
	}
	for range waiting {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for j, it := range board {
		it.set(boarded[j])
	}
	for i, it := range lead {
		it.set(results[i])
	}
	return nil
}

// one returns a Loader of one key through load.
func one[V any](load BatchLoader[V]) Loader[V] {
	return func(ctx context.Context, key string) (V, error) {
		var zero V
		m, err := load(ctx, []string{key})
		if err != nil {
			return zero, err
		}
		v, ok := m[key]
		if !ok {
			return zero, ErrNotFound
		}
		return v, nil
	}
}
