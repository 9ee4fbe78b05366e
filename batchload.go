package stampede

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/stampede-cache/stampede/internal/scripts"
)

// The flights of a GetMany: the keys this instance loads for it, leased together (one script
// call per slot), loaded together (one BatchLoader call per chunk) and filled together (one
// script call per slot), each key fenced, backed off, served stale and reported exactly as a
// Get's flight would (fetch, acquire, lead, settle, fill).

// leaseOf is what a GetMany knows of one key's lease.
type leaseOf struct {
	k         scripts.Keys
	token     string
	fence     string
	w         *waiter   // while it waits for the holder's message
	look      int64     // while it waits: when to look again (Unix nanoseconds)
	waitStart time.Time // the first time it found the lease held
	wait      spanEnd   // the lease_wait span, while it waits
}

// fetchMany is the body of the flights a GetMany leads, on a goroutine of the cache: it writes
// the result of lead[i] to results[i].
func (c *Cache[V]) fetchMany(ctx context.Context, lead []*item[V], results []result[V], load BatchLoader[V]) {
	now := time.Now().UnixNano()
	var alone, leased []int
	for i, it := range lead {
		// Look again: a flight that ended since this caller looked at the L1 may have filled it.
		if c.useL1(it.key, it.p) {
			if e, _, ok := c.l1.get(it.key); ok && c.judge(&e.h, now, it.p, e.promoted) == serve {
				results[i] = entryResult(e)
				continue
			}
		}
		if err, ok := c.failures.active(it.key, now); ok {
			results[i] = c.failed(err, *it.o())
			continue
		}
		if it.o().redisDown || it.o().foreign {
			alone = append(alone, i)
		} else {
			leased = append(leased, i)
		}
	}
	if len(leased) > 0 {
		alone = append(alone, c.acquireMany(ctx, lead, leased, results, load)...)
	}
	if len(alone) > 0 {
		c.loadManyAlone(ctx, lead, alone, results, load)
	}
}

// acquireMany takes the leases of lead[idx...] (one script call per slot) and loads the keys it
// won, while it waits, as acquire does, for the keys whose lease another instance holds: for a
// message about the key, or until the lease would expire, or at most pollEvery, and then looks
// again; it gives up on a key after the load timeout plus two lease TTLs (ErrWaitTimeout). It
// returns the keys to load without Redis, whose lease could not be asked for.
func (c *Cache[V]) acquireMany(ctx context.Context, lead []*item[V], idx []int, results []result[V], load BatchLoader[V]) (alone []int) {
	giveUp := time.Now().Add(c.loadTimeout + 2*c.leaseTTL)
	leases := make([]leaseOf, len(lead))
	msgs := make(chan scripts.Message, 2*len(idx)+1)
	held := make(map[string]int) // key -> index in lead, while another instance holds its lease
	var loads sync.WaitGroup
	stopWaiting := func(i int, err error) {
		l := &leases[i]
		if l.w != nil {
			c.notify.unwatch(l.w)
			l.w = nil
		}
		l.wait.done(err)
		l.wait = spanEnd{}
		if !l.waitStart.IsZero() {
			c.hooks.leaseWait(lead[i].key, time.Since(l.waitStart))
			l.waitStart = time.Time{}
		}
	}
	todo := idx
	for {
		if len(todo) > 0 {
			since := c.l1Now()
			for _, i := range todo {
				l, it := &leases[i], lead[i]
				if l.token == "" {
					l.k, l.token = scripts.KeysFor(c.namespace, it.key), c.newToken()
				}
				if it.p.Strategy == Lease {
					// Watch before asking, so that a notification sent in between is not missed.
					l.w = c.notify.watchOn(it.key, msgs)
				}
			}
			lrs, errs := c.leaseMany(ctx, lead, todo, leases)
			var won, again []int
			now := time.Now()
			for j, i := range todo {
				it, l, lr := lead[i], &leases[i], lrs[j]
				if errs[j] != nil || lr.State != scripts.Held {
					stopWaiting(i, nil)
				}
				switch {
				case errs[j] != nil:
					if ctx.Err() != nil {
						results[i] = result[V]{err: ErrClosed}
					} else {
						alone = append(alone, i)
					}
				case lr.State == scripts.Changed:
					if r, ok := c.adoptMany(ctx, it, []byte(lr.Value), since, load); ok {
						results[i] = r
					} else if it.o().foreign {
						alone = append(alone, i) // another version's: leave it
					} else {
						again = append(again, i) // changed into something nobody may serve
					}
				case lr.State == scripts.Acquired:
					l.fence = lr.Fence
					won = append(won, i)
				default: // Held
					if l.waitStart.IsZero() {
						l.waitStart = now
						c.stats.Add(statLeaseWaits)
						_, l.wait = c.tracer.start(ctx, Span{Op: SpanLeaseWait, Key: it.key})
					}
					l.look = now.Add(min(max(lr.Remaining, time.Millisecond)+leaseSlack, pollEvery)).UnixNano()
					held[it.key] = i
				}
			}
			if len(won) > 0 {
				loads.Go(func() { c.leadMany(ctx, lead, won, leases, results, load) })
			}
			todo = again
			if len(todo) > 0 {
				if time.Now().After(giveUp) {
					for _, i := range todo {
						results[i] = result[V]{err: fmt.Errorf("%w (key %q)", ErrWaitTimeout, lead[i].key)}
					}
					todo = nil
				} else {
					continue
				}
			}
		}
		if len(held) == 0 {
			break
		}
		if time.Now().After(giveUp) {
			for key, i := range held {
				err := fmt.Errorf("%w (key %q)", ErrWaitTimeout, key)
				stopWaiting(i, err)
				results[i] = result[V]{err: err}
			}
			break
		}
		var err error
		todo, err = c.awaitMany(ctx, lead, held, leases, msgs, results, load, stopWaiting, &alone)
		if err != nil {
			for _, i := range held {
				stopWaiting(i, err)
				results[i] = result[V]{err: err}
			}
			break
		}
	}
	loads.Wait()
	return alone
}

// awaitMany waits for a message about a held key, or until the first of them is to be looked
// at again, whichever comes first, and returns the keys to ask for again: those whose message
// said the lease is free (or that a value came that cannot be served), and those whose look is
// due. A Filled message that carries the value, or a Failed one, settles its key at once. It
// returns ErrClosed when ctx ends (Close).
func (c *Cache[V]) awaitMany(ctx context.Context, lead []*item[V], held map[string]int, leases []leaseOf,
	msgs chan scripts.Message, results []result[V], load BatchLoader[V], stopWaiting func(int, error), alone *[]int) ([]int, error) {
	first := int64(0)
	for _, i := range held {
		if first == 0 || leases[i].look < first {
			first = leases[i].look
		}
	}
	var again []int
	handle := func(m scripts.Message) {
		i, ok := held[m.Key]
		if !ok {
			return // a key this call no longer waits for
		}
		it := lead[i]
		delete(held, m.Key)
		switch {
		case m.Kind == scripts.Failed:
			stopWaiting(i, nil)
			results[i] = c.failed(&remoteError{msg: m.Err, notFound: m.NotFound}, *it.o())
			return
		case m.Kind == scripts.Filled && m.Value != "":
			// The fill sent its value: take it rather than read Redis, which may have evicted it.
			if r, ok := c.adoptMany(ctx, it, []byte(m.Value), c.l1Now(), load); ok {
				stopWaiting(i, nil)
				results[i] = r
				return
			}
			if it.o().foreign {
				stopWaiting(i, nil)
				*alone = append(*alone, i)
				return
			}
		}
		c.notify.unwatch(leases[i].w) // watched again when it asks again
		leases[i].w = nil
		again = append(again, i)
	}
	t := time.NewTimer(time.Duration(max(first-time.Now().UnixNano(), 0)))
	defer t.Stop()
	select {
	case m := <-msgs:
		handle(m)
	case <-t.C:
	case <-ctx.Done():
		return nil, ErrClosed
	}
	for drained := false; !drained; {
		select {
		case m := <-msgs:
			handle(m)
		default:
			drained = true
		}
	}
	now := time.Now().UnixNano()
	for key, i := range held {
		if now >= leases[i].look {
			delete(held, key)
			c.notify.unwatch(leases[i].w)
			leases[i].w = nil
			again = append(again, i)
		}
	}
	return again, nil
}

// watchOn registers a waiter for key whose messages go to c, which a GetMany shares between
// its keys. A message that finds c full is dropped: the poll bounds what it costs.
func (n *notifier) watchOn(key string, c chan scripts.Message) *waiter {
	w := &waiter{key: key, c: c}
	n.mu.Lock()
	if n.waiters == nil {
		n.waiters = make(map[string][]*waiter)
	}
	n.waiters[key] = append(n.waiters[key], w)
	n.mu.Unlock()
	return w
}

// leaseMany runs the lease script of lead[idx...] with one script call per slot, pipelined (one
// round trip per node), and returns each key's outcome or error.
func (c *Cache[V]) leaseMany(ctx context.Context, lead []*item[V], idx []int, leases []leaseOf) ([]scripts.LeaseResult, []error) {
	lrs := make([]scripts.LeaseResult, len(idx))
	errs := make([]error, len(idx))
	if !c.breaker.Allow(time.Now().UnixNano()) {
		for j := range errs {
			errs[j] = errCircuitOpen
		}
		return lrs, errs
	}
	rctx, cancel := c.redisContext(ctx)
	defer cancel()
	_, cluster := c.cluster()
	groups := scripts.GroupBySlot(len(idx), func(j int) string { return leases[idx[j]].k.Value }, cluster)
	calls := make([]*scripts.Call, len(groups))
	for g, js := range groups {
		ks := make([]scripts.Keys, len(js))
		args := make([]scripts.LeaseArgs, len(js))
		for n, j := range js {
			i := idx[j]
			ks[n] = leases[i].k
			args[n] = scripts.LeaseArgs{Token: leases[i].token, LeaseTTL: c.leaseTTL, GenTTL: c.genTTL,
				Seen: lead[i].o().seen, NoLock: lead[i].p.Strategy == Singleflight}
		}
		calls[g] = scripts.LeaseCall(ks, args)
	}
	scripts.Pipelined(rctx, c.client, calls)
	for g, js := range groups {
		res, err := calls[g].LeaseResults(len(js))
		switch {
		case err == nil:
			c.breaker.Success()
			c.redisAnswered()
		case ctx.Err() != nil:
			c.breaker.Abandon()
		default:
			c.redisFailed("lease", lead[idx[js[0]]].key, err)
			var ks []scripts.Keys
			var tokens, keys []string
			for _, j := range js {
				i := idx[j]
				if lead[i].p.Strategy == Lease {
					ks, tokens, keys = append(ks, leases[i].k), append(tokens, leases[i].token), append(keys, lead[i].key)
				}
			}
			// The script may still run when Redis gets it: release what it took.
			c.orphanMany(ks, tokens, keys)
		}
		for n, j := range js {
			if err != nil {
				errs[j] = err
			} else {
				lrs[j] = res[n]
			}
		}
	}
	return lrs, errs
}

// adoptMany is adopt for a key of a GetMany: its background refresh goes through the
// BatchLoader.
func (c *Cache[V]) adoptMany(ctx context.Context, it *item[V], raw []byte, since mark, load BatchLoader[V]) (result[V], bool) {
	it.o().seen = seenGen(raw)
	e, ok := c.decode(it.key, raw)
	if !ok {
		it.o().foreign = c.version != "" && c.foreign(it.key, raw, it.p)
		return result[V]{}, false
	}
	now := time.Now().UnixNano()
	switch v := c.judgeMany(it.key, &e.h, now, it.p); v {
	case serve, serveAndRefresh:
		c.keep(it.key, e.value, e.h, len(raw), it.p, since)
		if v == serveAndRefresh {
			c.refreshManyInBackground(ctx, it.key, it.p, load, &e.h, now)
		}
		return entryResult(&e), true
	case fallback:
		it.o().stale = escape(e)
	}
	return result[V]{}, false
}

// leadMany loads the keys lead[won...], whose leases this instance holds (extending them while
// the load runs), and settles each as settle does.
func (c *Cache[V]) leadMany(ctx context.Context, lead []*item[V], won []int, leases []leaseOf, results []result[V], load BatchLoader[V]) {
	stop := c.keepLeases(lead, won, leases)
	its := make([]*item[V], len(won))
	for j, i := range won {
		its[j] = lead[i]
	}
	ls := c.loadTogether(ctx, its, load)
	stop()
	c.settleMany(ctx, lead, won, leases, ls, results)
}

// keepLeases extends the leases of lead[won...] every third of the lease TTL until stop is
// called, as keepLease does for one key: one script call per slot, pipelined.
func (c *Cache[V]) keepLeases(lead []*item[V], won []int, leases []leaseOf) (stop func()) {
	var ks []scripts.Keys
	var tokens []string
	for _, i := range won {
		if lead[i].p.Strategy == Lease {
			ks = append(ks, leases[i].k)
			tokens = append(tokens, leases[i].token)
		}
	}
	if len(ks) == 0 {
		return func() {}
	}
	_, cluster := c.cluster()
	groups := scripts.GroupBySlot(len(ks), func(j int) string { return ks[j].Value }, cluster)
	return c.whileLoading(func() bool {
		calls := make([]*scripts.Call, len(groups))
		for g, js := range groups {
			gk, gt := make([]scripts.Keys, len(js)), make([]string, len(js))
			for n, j := range js {
				gk[n], gt[n] = ks[j], tokens[j]
			}
			calls[g] = scripts.ExtendCall(gk, gt, c.leaseTTL)
		}
		rctx, cancel := c.redisContext(c.life.ctx)
		scripts.Pipelined(rctx, c.client, calls)
		cancel()
		for _, call := range calls {
			if err := call.Err(); err != nil {
				c.redisFailed("extend", "", err)
				break
			}
		}
		return true
	})
}

// loadMany loads its with load, in chunks of at most WithMaxBatch keys run concurrently, and
// prepares what is to be written of each key (encoded with encode).
func (c *Cache[V]) loadMany(ctx context.Context, its []*item[V], load BatchLoader[V], encode bool) []loaded[V] {
	out := make([]loaded[V], len(its))
	size := c.batch.maxBatch
	if len(its) <= size {
		c.loadChunk(ctx, its, out, load, encode)
		return out
	}
	var wg sync.WaitGroup
	for a := 0; a < len(its); a += size {
		b := min(a+size, len(its))
		wg.Go(func() { c.loadChunk(ctx, its[a:b], out[a:b], load, encode) })
	}
	wg.Wait()
	return out
}

// loadChunk is one call of load, for its, whose outcome per key it writes to out: the value,
// ErrNotFound for a key the loader left out, or the call's error for every key.
func (c *Cache[V]) loadChunk(ctx context.Context, its []*item[V], out []loaded[V], load BatchLoader[V], encode bool) {
	keys := make([]string, len(its))
	spans := make([]spanEnd, len(its))
	for j, it := range its {
		keys[j] = it.key
		_, spans[j] = c.tracer.start(ctx, Span{Op: SpanLoad, Key: it.key})
	}
	m, call := c.callBatchLoader(ctx, keys, load)
	if call.err == nil && len(m) > 0 {
		asked := make(map[string]struct{}, len(keys))
		for _, k := range keys {
			asked[k] = struct{}{}
		}
		ignored := 0
		for k := range m {
			if _, ok := asked[k]; !ok {
				ignored++
			}
		}
		if ignored > 0 {
			c.log.Warn("stampede: the BatchLoader returned keys it was not asked for; they are ignored",
				"ignored", ignored, "asked", len(keys))
		}
	}
	for j, it := range its {
		l := call
		if l.err == nil {
			v, ok := m[it.key]
			if ok {
				l.value = v
			} else {
				l.err = ErrNotFound
			}
		}
		spans[j].done(l.err)
		out[j] = c.prepare(it.key, it.p, l, encode)
	}
}

// callBatchLoader is callLoader for a BatchLoader: it calls load on a goroutine of its own,
// under the load timeout, and waits for it until it returns or its ctx ends; a loader that
// ignores its ctx is abandoned, and a panic is a *PanicError. It returns the loader's map and
// the outcome of the call, which every key shares (its duration, error, SetTTL's choice).
func (c *Cache[V]) callBatchLoader(ctx context.Context, keys []string, load BatchLoader[V]) (map[string]V, loaded[V]) {
	lctx, cancel := context.WithTimeoutCause(ctx, c.loadTimeout, errLoadDeadline)
	defer cancel()
	lctx, chosen := withChosenTTL(lctx)
	type reply struct {
		m   map[string]V
		err error
	}
	start := time.Now()
	done := make(chan reply, 1)
	if !c.life.goLoader(func() {
		var r reply
		if p := userCall(func() { r.m, r.err = load(lctx, keys) }); p != nil {
			r.m, r.err = nil, p
		}
		done <- r
	}) {
		return nil, loaded[V]{err: ErrClosed, cancelled: true}
	}
	var r reply
	returned := true
	select {
	case r = <-done:
	case <-lctx.Done():
		returned = false
	}
	l := loaded[V]{took: time.Since(start), err: r.err}
	if returned {
		l.chosen = chosen
	}
	if lctx.Err() != nil && (!returned || r.err != nil) {
		r.m = nil
		if context.Cause(lctx) == errLoadDeadline {
			l.err = fmt.Errorf("%w after %v: %w", ErrLoadTimeout, c.loadTimeout, context.DeadlineExceeded)
		} else {
			l.err, l.cancelled = ctx.Err(), true
		}
	}
	return r.m, l
}

// settleMany ends the loads of lead[won...] as settle ends one: it writes the values (and the
// not-found entries) under their fences, one fill script call per slot, and releases the other
// leases, telling the waiters why, one release script call per slot.
func (c *Cache[V]) settleMany(ctx context.Context, lead []*item[V], won []int, leases []leaseOf, ls []loaded[V], results []result[V]) {
	// The loads are over: the writes and releases must happen even if the caller or Close ended
	// them meanwhile (each Redis call is still bounded by the Redis timeout).
	ctx = context.WithoutCancel(ctx)
	now := time.Now().UnixNano()
	var fills, releases []int // indexes in won
	var why []error           // of each release: the failure to tell, or nil
	release := func(j int, err error) {
		if lead[won[j]].p.Strategy == Lease { // Singleflight took no lease
			releases, why = append(releases, j), append(why, err)
		}
	}
	for j, i := range won {
		l, it := &ls[j], lead[i]
		switch {
		case l.cancelled:
			release(j, nil)
			results[i] = result[V]{err: l.err}
		case l.env != nil && l.h.WrittenAt < c.topo.staleBefore.Load():
			// The load began before an InvalidateAll (or a restart): what it read is not written.
			release(j, nil)
			results[i] = result[V]{value: l.value, err: l.err}
		case l.env != nil:
			fills = append(fills, j)
			results[i] = result[V]{value: l.value, err: l.err}
		case l.uncached:
			release(j, nil)
			results[i] = result[V]{value: l.value, err: l.err}
		case errors.Is(l.err, ErrNotFound):
			release(j, l.err)
			results[i] = result[V]{err: l.err}
		default:
			// Record the failure before the release publishes it (see settle).
			c.failures.record(it.key, l.err, now, c.rand(), false)
			if errors.Is(l.err, ErrLoadTimeout) {
				release(j, nil) // this loader is stuck, not necessarily the source
			} else {
				release(j, l.err)
			}
			results[i] = c.failed(l.err, *it.o())
		}
	}
	if len(releases) > 0 {
		c.releaseMany(ctx, lead, won, leases, releases, why)
	}
	if len(fills) > 0 {
		c.fillMany(ctx, lead, won, leases, ls, fills)
	}
}

// releaseMany releases the leases of lead[won[rel...]], each telling its waiters why[n].
func (c *Cache[V]) releaseMany(ctx context.Context, lead []*item[V], won []int, leases []leaseOf, rel []int, why []error) {
	_, cluster := c.cluster()
	groups := scripts.GroupBySlot(len(rel), func(n int) string { return leases[won[rel[n]]].k.Value }, cluster)
	calls := make([]*scripts.Call, len(groups))
	for g, ns := range groups {
		ks, tokens, msgs := make([]scripts.Keys, len(ns)), make([]string, len(ns)), make([][]byte, len(ns))
		for x, n := range ns {
			i := won[rel[n]]
			ks[x], tokens[x] = leases[i].k, leases[i].token
			msgs[x] = releaseMessage(lead[i].key, why[n]).Append(nil)
		}
		calls[g] = scripts.ReleaseCall(ks, tokens, c.channel, msgs)
	}
	rctx, cancel := c.redisContext(ctx)
	scripts.Pipelined(rctx, c.client, calls)
	cancel()
	for g, call := range calls {
		if err := call.Err(); err != nil {
			c.redisFailed("release", lead[won[rel[groups[g][0]]]].key, err)
		}
	}
}

// releaseMessage is the message a released lease publishes: that the load failed with loadErr,
// or with a nil loadErr only that the lease is free (as release sends it).
func releaseMessage(key string, loadErr error) scripts.Message {
	if loadErr == nil {
		return scripts.Message{Kind: scripts.Released, Key: key}
	}
	text := loadErr.Error()
	if len(text) > maxErrText {
		text = text[:maxErrText]
	}
	return scripts.Message{Kind: scripts.Failed, Key: key, NotFound: errors.Is(loadErr, ErrNotFound), Err: text}
}

// fillMany writes the loaded envelopes of lead[won[fills...]] under their fences, as fill does:
// one fill script call per slot, pipelined. It keeps each value in the L1 unless a newer write
// fenced it out.
func (c *Cache[V]) fillMany(ctx context.Context, lead []*item[V], won []int, leases []leaseOf, ls []loaded[V], fills []int) {
	since := c.l1Now()
	_, cluster := c.cluster()
	groups := scripts.GroupBySlot(len(fills), func(n int) string { return leases[won[fills[n]]].k.Value }, cluster)
	calls := make([]*scripts.Call, len(groups))
	stripes := make([][]int, len(groups)) // where each key's eviction goes (see route)
	rctx, cancel := c.redisContext(ctx)
	for g, ns := range groups {
		ks, args := make([]scripts.Keys, len(ns)), make([]scripts.FillArgs, len(ns))
		stripes[g] = make([]int, len(ns))
		for x, n := range ns {
			j := fills[n]
			i := won[j]
			p := lead[i].p
			ks[x] = leases[i].k
			route, stripe := c.route(rctx, lead[i].key, ks[x].Value)
			stripes[g][x] = stripe
			args[x] = scripts.FillArgs{Token: leaseToken(leases[i].token, p), Fence: leases[i].fence, Envelope: ls[j].env,
				TTL: p.hardTTL(ls[j].fresh), GenTTL: c.genTTL, Channel: route, Key: lead[i].key}
		}
		calls[g] = scripts.FillCall(ks, args)
	}
	scripts.Pipelined(rctx, c.client, calls)
	cancel()
	for g, ns := range groups {
		res, err := calls[g].FillResults(len(ns))
		c.wroteMany(stripes[g], err != nil || slices.ContainsFunc(res, func(r scripts.FillResult) bool { return r.Opened }))
		if err != nil {
			c.redisFailed("fill", lead[won[fills[ns[0]]]].key, err)
		}
		for x, n := range ns {
			j := fills[n]
			it, l := lead[won[j]], &ls[j]
			h, at := l.h, since
			switch {
			case err != nil:
				// The value is good, Redis is not: serve it from this instance (see fill).
				at = it.o().since
			case !res[x].OK:
				c.stats.Add(statFencedLoads)
				continue
			default:
				h.Gen = res[x].Gen
				if r := c.replicasOf(it.key, it.p); r > 0 {
					c.writeReplicas(ctx, it.key, r, l.env, h.Gen, h, it.p)
				}
			}
			c.keep(it.key, l.value, h, len(l.env), it.p, at)
		}
	}
}

// loadManyAlone loads lead[alone...] without Redis, as loadAlone does: one load per key in this
// instance (the flights), the values kept in the L1 only.
func (c *Cache[V]) loadManyAlone(ctx context.Context, lead []*item[V], alone []int, results []result[V], load BatchLoader[V]) {
	its := make([]*item[V], len(alone))
	for j, i := range alone {
		its[j] = lead[i]
	}
	ls := c.loadMany(ctx, its, load, false)
	now := time.Now().UnixNano()
	for j, i := range alone {
		l, it := &ls[j], lead[i]
		switch {
		case l.cancelled:
			results[i] = result[V]{err: l.err}
		case l.uncached:
			results[i] = result[V]{value: l.value, err: l.err}
		case l.err == nil || l.env != nil: // a value, or a not-found to cache
			c.keep(it.key, l.value, l.h, len(l.env), it.p, it.o().since)
			results[i] = result[V]{value: l.value, err: l.err}
		case errors.Is(l.err, ErrNotFound):
			results[i] = result[V]{err: l.err}
		default:
			c.failures.record(it.key, l.err, now, c.rand(), false)
			results[i] = c.failed(l.err, *it.o())
		}
	}
}

// orphanMany is orphan for the leases of a batch lease script whose call failed: they are
// released together, one release script call per slot, every orphanEvery until Redis has
// answered for a lease TTL (as orphans are), so that a failed batch costs Redis a dozen calls,
// not a dozen per key.
func (c *Cache[V]) orphanMany(ks []scripts.Keys, tokens, keys []string) {
	if len(ks) == 0 {
		return
	}
	msgs := make([][]byte, len(ks))
	for i, key := range keys {
		msgs[i] = scripts.Message{Kind: scripts.Released, Key: key}.Append(nil)
	}
	_, cluster := c.cluster()
	groups := scripts.GroupBySlot(len(ks), func(i int) string { return ks[i].Value }, cluster)
	c.life.goTracked(func() {
		t := time.NewTicker(orphanEvery)
		defer t.Stop()
		var answered time.Time
		for answered.IsZero() || time.Since(answered) < c.leaseTTL {
			select {
			case <-c.life.ctx.Done():
				return
			case <-t.C:
			}
			if c.breaker.Open(time.Now().UnixNano()) {
				continue // Redis is failing: nothing would get through
			}
			calls := make([]*scripts.Call, len(groups))
			for g, idx := range groups {
				gk, gt, gm := make([]scripts.Keys, len(idx)), make([]string, len(idx)), make([][]byte, len(idx))
				for n, i := range idx {
					gk[n], gt[n], gm[n] = ks[i], tokens[i], msgs[i]
				}
				calls[g] = scripts.ReleaseCall(gk, gt, c.channel, gm)
			}
			ctx, cancel := c.redisContext(c.life.ctx)
			scripts.Pipelined(ctx, c.client, calls)
			cancel()
			ok := true
			for _, call := range calls {
				ok = ok && call.Err() == nil
			}
			if ok && answered.IsZero() {
				answered = time.Now()
			}
		}
	})
}
