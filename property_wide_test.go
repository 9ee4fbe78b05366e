package stampede_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// The wide property is TestPropertyNoStaleReadAfterWrite's, with what it leaves out: the L1 is
// on, some callers cancel, and some loaders panic or ignore their ctx.
//
// With an L1, another instance learns of a write from a pub/sub message, so the property gets a
// staleness bound: once a Set or a Delete of a key has returned, no Get of that key that starts
// more than the bound later, on any instance, returns a value older than the write's; and on
// the instance that wrote, none that starts afterwards does (bound 0). Reads that are stale
// within the bound are counted, and the largest staleness observed is reported: how long after
// the write that made the value old had returned the Get started. Each interleaving ends with
// a Get on every instance once all has been quiet for longer than the bound.
//
// Errors are expected, and counted, when a loader panicked (a *stampede.PanicError, also as
// another instance reports it), when the caller's own ctx was cancelled, and when a loader that
// ignores its ctx ran past the load timeout (a deadline, or a waiter giving up on it). Any other
// error fails the test, as in TestPropertyNoStaleReadAfterWrite. A value, whoever returned it
// and however late, must satisfy the property.

const (
	// wideBoundFake is the staleness bound in a synctest bubble, in fake time: the reply that
	// tells the writer it opened an eviction window, the window, the flush (which may need a
	// second round trip, to load its script) and its message each take up to wideLatencyTail.
	wideBoundFake = 3*wideLatencyTail + stampede.DefaultEvictionWindow
	// wideBoundReal is the staleness bound on the real Redis, in real time.
	wideBoundReal = 100 * time.Millisecond
	// wideLatency and wideLatencyTail bound how long a reply or message of miniredis takes to
	// reach its client in the synctest variant: drawn for each read of each connection, up to
	// wideLatency, and one time in ten up to wideLatencyTail (see laggyConn).
	wideLatency     = 2 * time.Millisecond
	wideLatencyTail = 20 * time.Millisecond
	// wideQuantum is the quantum of the synctest variant (see wideTiming.quantum).
	wideQuantum = time.Millisecond

	widePanicRate  = 0.04 // of the loaders of Gets and Refreshes
	wideStuckRate  = 0.03 // of the loaders of Gets and Refreshes: they ignore ctx
	wideCancelRate = 0.2  // of Gets and Refreshes: their ctx is cancelled at a random moment

	// wideStuckAfterglow is how long after a stuck load ended an error of its kind may still
	// come from it (the failure back-off of the key, here or reported by another instance).
	wideStuckAfterglow = time.Second
)

// wideTiming is propTiming plus what the wide property adds.
type wideTiming struct {
	propTiming
	loadTimeout time.Duration // of the caches
	stuckFor    time.Duration // how long a loader that ignores ctx blocks: past loadTimeout
	cancelIn    time.Duration // a cancelled caller's ctx ends within it
	bound       time.Duration // staleness allowed on other instances than the writer
	// quantum, if not 0, rounds the start of each operation and the pause of each loader down
	// to a multiple of it. In a synctest bubble nothing else makes two things happen at the
	// same instant, and what happens at one instant runs concurrently for real: a coarse
	// quantum makes operations race there as they do in real time.
	quantum time.Duration
}

// round rounds d down to a multiple of the quantum.
func (tm wideTiming) round(d time.Duration) time.Duration {
	if tm.quantum <= 0 {
		return d
	}
	return d / tm.quantum * tm.quantum
}

// wideWrite is a Set or a Delete that returned.
type wideWrite struct {
	version int64
	at      time.Time // when it returned
	inst    int       // the instance that wrote
}

// span is when something lasted (a load that ignored ctx, the loss of a subscription); to is
// zero while it lasts.
type span struct{ from, to time.Time }

// wideDB is versionedDB with the times of the writes that returned, and the spans of the loads
// that ignored their ctx.
type wideDB struct {
	*versionedDB
	mu      sync.Mutex
	history map[string][]wideWrite   // guarded by mu; per key, in the order of versions
	stuck   map[string][]*span       // guarded by mu
	turns   map[string]chan struct{} // guarded by mu; per key, a write path holds it (see write)
}

func newWideDB() *wideDB {
	return &wideDB{versionedDB: newVersionedDB(), history: map[string][]wideWrite{}, stuck: map[string][]*span{},
		turns: map[string]chan struct{}{}}
}

// write runs a Set or a Delete from instance inst as versionedDB.write does, and records when
// it returned if it succeeded. The record is made under the key's write lock, so the history
// stays in the order of versions.
func (d *wideDB) write(key string, inst int, write func(v int64) error) error {
	return d.invalidate(key, true, func(v int64) error {
		err := write(v)
		if err == nil {
			now := time.Now()
			d.mu.Lock()
			d.history[key] = append(d.history[key], wideWrite{version: v, at: now, inst: inst})
			d.mu.Unlock()
		}
		return err
	})
}

// invalidate is versionedDB.write, whose writers take turns on a channel first: when Redis's
// replies take fake time (laggyConn), a write path waits for another, and a goroutine waiting
// for a mutex, as versionedDB's, would stop a synctest bubble's clock.
func (d *wideDB) invalidate(key string, raises bool, write func(v int64) error) error {
	d.mu.Lock()
	turn := d.turns[key]
	if turn == nil {
		turn = make(chan struct{}, 1)
		d.turns[key] = turn
	}
	d.mu.Unlock()
	turn <- struct{}{}
	defer func() { <-turn }()
	return d.versionedDB.write(key, raises, write)
}

// begin is called when an operation starts: it returns the writes of key that had returned,
// and the time.
func (d *wideDB) begin(key string) ([]wideWrite, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.history[key]
	return h[:len(h):len(h)], time.Now()
}

// stuckDuring reports whether a loader of key that ignores ctx ran between from and to, or
// ended less than wideStuckAfterglow before from.
func (d *wideDB) stuckDuring(key string, from, to time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.stuck[key] {
		if !s.from.After(to) && (s.to.IsZero() || !s.to.Before(from.Add(-wideStuckAfterglow))) {
			return true
		}
	}
	return false
}

type loadKind int

const (
	loadNormal loadKind = iota
	loadPanics          // after its pause, unless ctx ends first
	loadStuck           // reads the database, then blocks stuckFor without looking at ctx
)

// loader returns a loader of kind; a normal one is versionedDB's.
func (d *wideDB) loader(kind loadKind, pause time.Duration, tm wideTiming, chk *wideChecker) stampede.Loader[int64] {
	switch kind {
	case loadPanics:
		return func(ctx context.Context, key string) (int64, error) {
			if pause > 0 {
				select {
				case <-time.After(pause):
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
			chk.panics.Add(1)
			panic("wide: the loader panics")
		}
	case loadStuck:
		return func(_ context.Context, key string) (int64, error) {
			v := d.read(key)
			s := &span{from: time.Now()}
			d.mu.Lock()
			d.stuck[key] = append(d.stuck[key], s)
			d.mu.Unlock()
			chk.stuckLoads.Add(1)
			time.Sleep(tm.stuckFor) // ctx or not
			d.mu.Lock()
			s.to = time.Now()
			d.mu.Unlock()
			return v, nil
		}
	}
	return d.versionedDB.loader(pause)
}

// wideChecker is propChecker (whose violations and errors fail the test) plus the counts of the
// wide property.
type wideChecker struct {
	propChecker
	bound time.Duration

	refreshes                        atomic.Int64 // Refresh values checked
	checked                          atomic.Int64 // Get values checked
	stale, beyond, staleOwn          atomic.Int64 // Gets that returned a value older than a returned write's: on another instance (and of them, beyond the bound), on the writer
	maxStale, maxLate                atomic.Int64 // the largest staleness observed on another instance, from the write and from when the instance could know, in nanoseconds
	cancelled                        atomic.Int64 // callers whose ctx was cancelled
	cancelErrs, panicErrs, stuckErrs atomic.Int64 // the expected errors
	panics, stuckLoads               atomic.Int64 // loads that panicked, that ignored ctx
	maxGet                           atomic.Int64 // the longest Get of a caller that did not cancel, in nanoseconds
	slowGets                         atomic.Int64 // such Gets longer than the load timeout plus two lease TTLs

	excused atomic.Int64 // stale reads beyond the bound after the write, within it after the instance subscribed again

	deafMu sync.Mutex
	deaf   map[int][]*span // guarded by deafMu: per instance, while it had lost its subscription

	statsMu    sync.Mutex
	stats      stampede.Stats // guarded by statsMu: of the caches, summed
	unexpected map[string]int // guarded by statsMu: the unexpected errors, by message
	stuckMsgs  map[string]int // guarded by statsMu: the errors of loaders that ignored ctx, by message
}

func atomicMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

func (c *wideChecker) addStats(caches []*stampede.Cache[int64]) {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	for _, cache := range caches {
		x := cache.Stats()
		c.stats.L1Hits += x.L1Hits
		c.stats.L2Hits += x.L2Hits
		c.stats.Misses += x.Misses
		c.stats.Loads += x.Loads
		c.stats.LoadErrors += x.LoadErrors
		c.stats.LeaseWaits += x.LeaseWaits
		c.stats.EarlyRefreshes += x.EarlyRefreshes
		c.stats.StaleServed += x.StaleServed
		c.stats.FencedLoads += x.FencedLoads
		c.stats.RedisErrors += x.RedisErrors
	}
}

// check checks value v, returned by what (a Get, or a Refresh when strict: its value comes from
// its own loader, which read the database after the Refresh began) on instance inst, which
// began at start when writes had returned.
func (c *wideChecker) check(what string, db *wideDB, key string, inst int, v int64, writes []wideWrite, start time.Time, strict bool) {
	if now := db.read(key); v > now {
		c.violation("%s: %s on instance %d returned version %d, which the database never had (it is at %d)", key, what, inst, v, now)
		return
	}
	// The first write that made v old; versions, and so the times the writes returned, rise
	// along the history.
	i := 0
	for i < len(writes) && writes[i].version <= v {
		i++
	}
	if i == len(writes) {
		return
	}
	first, last := writes[i], writes[len(writes)-1]
	staleness := start.Sub(first.at)
	if strict {
		c.violation("%s: %s on instance %d returned version %d, older than version %d, which instance %d wrote %v before it began",
			key, what, inst, v, last.version, last.inst, staleness)
		return
	}
	for _, w := range writes[i:] {
		if w.inst == inst {
			c.staleOwn.Add(1)
			c.violation("%s: %s on instance %d returned version %d, %v after that instance's own write of version %d returned",
				key, what, inst, v, start.Sub(w.at), w.version)
			return
		}
	}
	c.stale.Add(1)
	late := time.Duration(0) // staleness, from when the instance could know
	if known := c.learned(inst, writes[i:]); !known.IsZero() {
		late = start.Sub(known)
	}
	atomicMax(&c.maxStale, int64(staleness))
	atomicMax(&c.maxLate, int64(late))
	switch {
	case late > c.bound:
		c.beyond.Add(1)
		c.violation("%s: %s on instance %d returned version %d, %v (bound %v) after instance %d's write of version %d returned (the newest write, of version %d, returned %v before it began; %v from when the instance could know)",
			key, what, inst, v, staleness, c.bound, first.inst, first.version, last.version, start.Sub(last.at), late)
	case staleness > c.bound:
		c.excused.Add(1)
	}
}

// deafen notes that instance inst loses its subscription now, until hear is called.
func (c *wideChecker) deafen(inst int) *span {
	c.deafMu.Lock()
	defer c.deafMu.Unlock()
	if c.deaf == nil {
		c.deaf = map[int][]*span{}
	}
	s := &span{from: time.Now()}
	c.deaf[inst] = append(c.deaf[inst], s)
	return s
}

// hear notes that the instance of s has subscribed again (and emptied its L1).
func (c *wideChecker) hear(s *span) {
	c.deafMu.Lock()
	defer c.deafMu.Unlock()
	s.to = time.Now()
}

// learned returns when instance inst could know that a value older than the first of writes is
// old: when the first of them returned, or, for a write whose message the instance may have
// lost with its subscription (it returned less than the bound before the loss, or during it),
// when the instance subscribed again; the zero time if it cannot know yet.
func (c *wideChecker) learned(inst int, writes []wideWrite) time.Time {
	c.deafMu.Lock()
	defer c.deafMu.Unlock()
	var known time.Time
	for _, w := range writes {
		at := w.at
		for _, s := range c.deaf[inst] {
			if w.at.Before(s.from.Add(-c.bound)) || !s.to.IsZero() && w.at.After(s.to) {
				continue
			}
			if s.to.IsZero() {
				at = time.Time{}
				break
			}
			if s.to.After(at) {
				at = s.to
			}
		}
		if !at.IsZero() && (known.IsZero() || at.Before(known)) {
			known = at
		}
	}
	return known
}

// classify classifies the error of an operation that began at start and ended at end: an error
// of a caller that cancelled, of a loader that panicked, or of one that ignored ctx past the
// load timeout, is expected; any other fails the test.
func (c *wideChecker) classify(what string, db *wideDB, key string, inst int, err error, cancelled bool, start, end time.Time) {
	var pe *stampede.PanicError
	msg := err.Error()
	switch {
	case cancelled:
		c.cancelErrs.Add(1)
	case errors.As(err, &pe) || strings.Contains(msg, "panic in user code"):
		c.panicErrs.Add(1)
	case (errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "deadline exceeded") ||
		errors.Is(err, stampede.ErrWaitTimeout) || errors.Is(err, stampede.ErrLoadTimeout)) && db.stuckDuring(key, start, end):
		c.stuckErrs.Add(1)
		c.statsMu.Lock()
		if c.stuckMsgs == nil {
			c.stuckMsgs = map[string]int{}
		}
		c.stuckMsgs[strings.TrimSuffix(msg, key)]++
		c.statsMu.Unlock()
	default:
		if i := strings.Index(msg, "\n"); i >= 0 {
			msg = msg[:i]
		}
		c.error("%s: %s on instance %d, %v after it began: %s", key, what, inst, end.Sub(start), msg)
		c.statsMu.Lock()
		if c.unexpected == nil {
			c.unexpected = map[string]int{}
		}
		c.unexpected[msg]++
		c.statsMu.Unlock()
	}
}

// runWideInterleaving is runInterleaving with the L1 on, callers that cancel, and loaders that
// panic or ignore ctx.
func runWideInterleaving(rng *rand.Rand, caches []*stampede.Cache[int64], db *wideDB, key string, tm wideTiming, chk *wideChecker) {
	pause := func() time.Duration {
		switch x := rng.Float64(); {
		case x < 0.4:
			return 0
		case x < 0.7:
			return tm.round(time.Duration(rng.Int64N(int64(tm.leaseTTL / 2))))
		default: // longer than the lease: it must be extended
			return tm.round(tm.leaseTTL + time.Duration(rng.Int64N(int64(tm.leaseTTL))))
		}
	}
	type op struct {
		kind     int
		inst     int
		at       time.Duration
		load     stampede.Loader[int64]
		cancelIn time.Duration // -1: never
	}
	ops := make([]op, 3+rng.IntN(8))
	for i := range ops {
		o := op{
			kind:     rng.IntN(9), // 0-4 Get, 5 Set, 6 Delete, 7 Invalidate, 8 Refresh
			inst:     rng.IntN(len(caches)),
			at:       tm.round(time.Duration(rng.Int64N(int64(tm.window)))),
			cancelIn: -1,
		}
		kind := loadNormal
		switch x := rng.Float64(); {
		case x < widePanicRate:
			kind = loadPanics
		case x < widePanicRate+wideStuckRate:
			kind = loadStuck
		}
		o.load = db.loader(kind, pause(), tm, chk)
		if rng.Float64() < wideCancelRate {
			o.cancelIn = time.Duration(rng.Int64N(int64(tm.cancelIn)))
		}
		ops[i] = o
	}
	// get runs a Get on instance inst and checks it.
	get := func(opCtx context.Context, what string, inst int, load stampede.Loader[int64]) {
		chk.gets.Add(1)
		writes, start := db.begin(key)
		v, err := caches[inst].Get(opCtx, key, load)
		end := time.Now()
		if opCtx == ctx {
			atomicMax(&chk.maxGet, int64(end.Sub(start)))
			if end.Sub(start) > tm.loadTimeout+2*tm.leaseTTL {
				chk.slowGets.Add(1)
			}
		}
		if err != nil {
			chk.classify(what, db, key, inst, err, opCtx.Err() != nil, start, end)
			return
		}
		chk.checked.Add(1)
		chk.check(what, db, key, inst, v, writes, start, false)
	}
	var wg sync.WaitGroup
	for i, o := range ops {
		wg.Go(func() {
			time.Sleep(o.at)
			chk.ops.Add(1)
			c := caches[o.inst]
			opCtx := ctx
			if o.cancelIn >= 0 && (o.kind <= 4 || o.kind == 8) {
				chk.cancelled.Add(1)
				var cancel context.CancelFunc
				opCtx, cancel = context.WithCancel(ctx)
				defer cancel()
				defer time.AfterFunc(o.cancelIn, cancel).Stop()
			}
			switch o.kind {
			case 5:
				if err := db.write(key, o.inst, func(v int64) error { return c.Set(ctx, key, v) }); err != nil {
					chk.error("%s op %d Set on instance %d: %v", key, i, o.inst, err)
				}
			case 6:
				if err := db.write(key, o.inst, func(int64) error { return c.Delete(ctx, key) }); err != nil {
					chk.error("%s op %d Delete on instance %d: %v", key, i, o.inst, err)
				}
			case 7:
				if err := db.invalidate(key, false, func(int64) error { return c.Invalidate(ctx, key) }); err != nil {
					chk.error("%s op %d Invalidate on instance %d: %v", key, i, o.inst, err)
				}
			case 8:
				writes, start := db.begin(key)
				v, err := c.Refresh(opCtx, key, o.load)
				if err != nil {
					chk.classify(fmt.Sprintf("op %d Refresh", i), db, key, o.inst, err, opCtx.Err() != nil, start, time.Now())
					return
				}
				chk.refreshes.Add(1)
				chk.check(fmt.Sprintf("op %d Refresh", i), db, key, o.inst, v, writes, start, true)
			default:
				get(opCtx, fmt.Sprintf("op %d Get", i), o.inst, o.load)
			}
		})
	}
	wg.Wait()
	// Once all is quiet for longer than the bound, every instance must return the last write.
	time.Sleep(tm.bound + tm.bound/10)
	for inst := range caches {
		wg.Go(func() { get(ctx, "final Get", inst, db.loader(loadNormal, 0, tm, chk)) })
	}
	wg.Wait()
	chk.interleavings.Add(1)
}

// TestPropertyWideL1BoundedStaleness runs the wide property on miniredis in testing/synctest
// bubbles, sized as TestPropertyNoStaleReadAfterWrite's: 2,000 interleavings, 1,200 under the race detector
// (STAMPEDE_PROPERTY_INTERLEAVINGS sets another number), three instances with an L1 per bubble,
// 50 keys at a time on the same 50 keys, with a load timeout of 100 ms, loaders that ignore ctx
// for 300 ms, and miniredis replies and messages that take up to 2 ms, sometimes 20 ms, of fake
// time to arrive (laggyConn).
func TestPropertyWideL1BoundedStaleness(t *testing.T) {
	const (
		perBubble = 500
		keys      = 50
	)
	total := 2_000
	if raceEnabled {
		total = 1_200 // seven times slower under the race detector: CI's budget
	}
	if s := os.Getenv("STAMPEDE_PROPERTY_INTERLEAVINGS"); s != "" {
		var err error
		total, err = strconv.Atoi(s)
		require.NoError(t, err)
	}
	seed := propertySeed(t)
	tm := wideTiming{
		propTiming:  propTiming{leaseTTL: 20 * time.Millisecond, window: 100 * time.Millisecond},
		loadTimeout: 100 * time.Millisecond,
		stuckFor:    300 * time.Millisecond,
		cancelIn:    60 * time.Millisecond,
		bound:       wideBoundFake,
		quantum:     wideQuantum,
	}
	chk := &wideChecker{bound: tm.bound}
	t.Run("bubbles", func(t *testing.T) {
		for b := range (total + perBubble - 1) / perBubble {
			ttl := time.Duration(1+b%3) * 100 * time.Millisecond // values expire during some interleavings
			t.Run(fmt.Sprintf("%d-ttl%v", b, ttl), func(t *testing.T) {
				t.Parallel()
				synctest.Test(t, func(t *testing.T) {
					caches := laggyFleet(t, redistest.Mini(t), 3, wideLatencyDraw, stampede.WithL1(1000, time.Second),
						stampede.WithLeaseTTL(tm.leaseTTL), stampede.WithTTL(ttl), stampede.WithLoadTimeout(tm.loadTimeout))
					db := newWideDB()
					rng := rand.New(rand.NewPCG(seed, uint64(b)))
					var wg sync.WaitGroup
					for range perBubble / keys {
						for i := range keys {
							r := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
							wg.Go(func() { runWideInterleaving(r, caches, db, fmt.Sprint("k", i), tm, chk) })
						}
						wg.Wait()
					}
					chk.addStats(caches)
				})
			})
		}
	})
	reportWide(t, chk)
}

// TestIntegrationPropertyWideL1BoundedStaleness runs the wide property on the real Redis, in
// real time, with the timing of TestIntegrationPropertyNoStaleReadAfterWrite (a 50 ms lease, a
// 2 s Redis timeout), a load timeout of 200 ms and loaders that ignore ctx for 500 ms: 400
// interleavings on 50 keys, 50 at a time. The second run loses subscriptions: during its middle
// batch, each instance's subscription is killed once (CLIENT KILL), and instance i may not
// subscribe again for i*deafStep (its Redis user loses the right to). Messages sent
// meanwhile are lost, and the bound runs from when the instance has subscribed again (and
// emptied its L1); values live 2 s in that run, so that what an instance missed is still in its
// L1 when it is back.
func TestIntegrationPropertyWideL1BoundedStaleness(t *testing.T) {
	addr := redistest.Addr(t)
	seed := propertySeed(t)
	tm := wideTiming{
		propTiming:  propTiming{leaseTTL: 50 * time.Millisecond, window: 200 * time.Millisecond},
		loadTimeout: 200 * time.Millisecond,
		stuckFor:    500 * time.Millisecond,
		cancelIn:    150 * time.Millisecond,
		bound:       wideBoundReal,
	}
	const (
		n        = 3
		keys     = 50
		batches  = 8
		deafStep = 150 * time.Millisecond
	)
	for _, lose := range []bool{false, true} {
		t.Run(map[bool]string{false: "steady", true: "subscriptions-lost"}[lose], func(t *testing.T) {
			ns := redistest.Namespace(t)
			admin := redistest.Real(t)
			// Values expire during the interleavings, but outlive the loss of subscriptions, so
			// that what an instance missed meanwhile is still in its L1 when it is back.
			ttl := 300 * time.Millisecond
			if lose {
				ttl = 2 * time.Second
			}
			caches := make([]*stampede.Cache[int64], n)
			names := make([]string, n)
			for i := range caches {
				names[i] = fmt.Sprintf("%s-%d", strings.NewReplacer(":", "-", " ", "_").Replace(ns), i)
				opt := &redis.Options{Addr: addr, ClientName: names[i], ContextTimeoutEnabled: true}
				if lose {
					// A Redis user of its own, whose right to subscribe the test takes away.
					require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", names[i], "on", ">"+names[i], "~*", "&*", "+@all").Err())
					t.Cleanup(func() { _ = admin.Do(context.Background(), "ACL", "DELUSER", names[i]).Err() })
					opt.Username, opt.Password = names[i], names[i]
				}
				client := redis.NewClient(opt)
				t.Cleanup(func() { _ = client.Close() })
				c, err := stampede.New[int64](client, stampede.WithNamespace(ns), stampede.WithL1(1000, time.Second),
					stampede.WithLeaseTTL(tm.leaseTTL), stampede.WithTTL(ttl),
					stampede.WithLoadTimeout(tm.loadTimeout), stampede.WithRedisTimeout(2*time.Second))
				require.NoError(t, err)
				t.Cleanup(func() { _ = c.Close() })
				caches[i] = c
			}
			chk := &wideChecker{bound: tm.bound}
			db := newWideDB()
			rng := rand.New(rand.NewPCG(seed, map[bool]uint64{false: 0, true: 1}[lose]))
			var wg sync.WaitGroup
			for batch := range batches {
				for i := range keys {
					r := rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64()))
					key := fmt.Sprint("k", i)
					wg.Go(func() { runWideInterleaving(r, caches, db, key, tm, chk) })
				}
				if lose && batch == batches/2 {
					loseSubscriptions(t, admin, caches, names, chk, rng, tm.window/n, deafStep)
				}
				wg.Wait()
			}
			chk.addStats(caches)
			reportWide(t, chk)
		})
	}
}

// loseSubscriptions kills the subscription of each instance in turn, a random time of up to
// every apart, and keeps instance i from subscribing again for i*step (its Redis user, named as
// its client, loses the right to). It tells chk when each instance lost its subscription and
// when it had subscribed again: a new subscribed connection shows in CLIENT LIST and the cache
// says it is subscribed.
func loseSubscriptions(t *testing.T, admin *redis.Client, caches []*stampede.Cache[int64], names []string, chk *wideChecker,
	rng *rand.Rand, every, step time.Duration) {
	t.Helper()
	type loss struct {
		s        *span
		killed   []string // ids of the connections killed
		restored bool     // it may subscribe again
		back     time.Duration
	}
	losses := make([]loss, len(caches))
	ids := func(name string) []string {
		list, err := admin.ClientList(ctx).Result()
		require.NoError(t, err)
		var ids []string
		for _, line := range subscribedLines(list, name) {
			ids = append(ids, strings.TrimPrefix(strings.Fields(line)[0], "id="))
		}
		return ids
	}
	for i, name := range names {
		time.Sleep(time.Duration(rng.Int64N(int64(every))))
		l := &losses[i]
		if i > 0 {
			require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", name, "-subscribe").Err())
		} else {
			l.restored = true
		}
		require.Eventually(t, func() bool { l.killed = ids(name); return len(l.killed) > 0 }, 5*time.Second, time.Millisecond)
		l.s = chk.deafen(i)
		for _, id := range l.killed {
			require.NoError(t, admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err())
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for left := len(losses); left > 0; time.Sleep(2 * time.Millisecond) {
		require.True(t, time.Now().Before(deadline), "the instances did not all subscribe again")
		for i := range losses {
			l := &losses[i]
			if l.s.to.IsZero() && !l.restored && time.Since(l.s.from) >= time.Duration(i)*step {
				require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", names[i], "+subscribe").Err())
				l.restored = true
			}
			if !l.s.to.IsZero() || !l.restored || !stampede.Subscribed(caches[i]) {
				continue
			}
			for _, id := range ids(names[i]) {
				if !slices.Contains(l.killed, id) && stampede.Subscribed(caches[i]) {
					chk.hear(l.s)
					l.back = l.s.to.Sub(l.s.from)
					left--
					break
				}
			}
		}
	}
	var backs []string
	for i, l := range losses {
		backs = append(backs, fmt.Sprintf("instance %d: %v (kept from subscribing %v)", i, l.back.Round(time.Millisecond), time.Duration(i)*step))
	}
	t.Logf("subscriptions lost, then back after: %s", strings.Join(backs, "; "))
}

// reportWide logs the figures of a wide run, then fails it on violations and unexpected
// errors, as reportProperty does.
func reportWide(t *testing.T, chk *wideChecker) {
	t.Helper()
	s := chk.stats
	t.Logf("%d Gets returned a value and were checked (%d Refresh values too): %d stale on another instance than the writer's (%d beyond the bound), %d stale on the writer's; max staleness observed %v, bound %v",
		chk.checked.Load(), chk.refreshes.Load(), chk.stale.Load(), chk.beyond.Load(), chk.staleOwn.Load(), time.Duration(chk.maxStale.Load()), chk.bound)
	if n := chk.excused.Load(); n > 0 || chk.maxLate.Load() != chk.maxStale.Load() {
		t.Logf("%d stale reads were beyond the bound after the write but within it after their instance subscribed again; max staleness from when the instance could know: %v",
			n, time.Duration(chk.maxLate.Load()))
	}
	t.Logf("expected errors: %d of callers that cancelled (of %d that had a cancelled ctx), %d of loaders that panicked (%d panics), %d of loaders that ignored ctx (%d such loads); unexpected errors: %d",
		chk.cancelErrs.Load(), chk.cancelled.Load(), chk.panicErrs.Load(), chk.panics.Load(), chk.stuckErrs.Load(), chk.stuckLoads.Load(), chk.failed.Load())
	if len(chk.stuckMsgs) > 0 {
		t.Logf("errors of loaders that ignored ctx, by message: %v", chk.stuckMsgs)
	}
	if len(chk.unexpected) > 0 {
		t.Logf("unexpected errors by message: %v", chk.unexpected)
	}
	t.Logf("the longest Get of a caller that did not cancel took %v; %d took longer than the load timeout plus two lease TTLs",
		time.Duration(chk.maxGet.Load()), chk.slowGets.Load())
	t.Logf("caches: %d L1 hits, %d L2 hits, %d misses, %d loads (%d failed, %d fenced out), %d lease waits, %d background refreshes, %d stale served, %d Redis errors",
		s.L1Hits, s.L2Hits, s.Misses, s.Loads, s.LoadErrors, s.FencedLoads, s.LeaseWaits, s.EarlyRefreshes, s.StaleServed, s.RedisErrors)
	reportProperty(t, &chk.propChecker)
}

// wideLatencyDraw draws a latency of laggyConn: up to wideLatency, one time in ten up to
// wideLatencyTail.
func wideLatencyDraw() time.Duration {
	d := wideLatency
	if rand.IntN(10) == 0 {
		d = wideLatencyTail
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// laggyFleet is fleet, with clients whose connections deliver what miniredis sends after a
// latency drawn for each read (see laggyConn).
func laggyFleet(t *testing.T, m *miniredis.Miniredis, n int, latency func() time.Duration, opts ...stampede.Option) []*stampede.Cache[int64] {
	t.Helper()
	caches := make([]*stampede.Cache[int64], n)
	for i := range caches {
		// As redistest.Client, but for the dialer.
		client := redis.NewClient(&redis.Options{
			Addr: "127.0.0.1:6379",
			Dialer: func(context.Context, string, string) (net.Conn, error) {
				c, err := m.Dial()
				if err != nil {
					return nil, err
				}
				return newLaggyConn(c, latency), nil
			},
			MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
			PoolSize:                 4096,
		})
		t.Cleanup(func() { _ = client.Close() })
		c, err := stampede.New[int64](client, opts...)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, c.Close()) })
		caches[i] = c
	}
	return caches
}

// laggyConn delivers what the server writes on a connection after a random latency, drawn for
// each read: in a synctest bubble, fake time passes between a command and its reply, and a
// message published after a reply may reach another connection first, as on a network, which
// opens the windows that the L1's coherence must close. Each connection keeps its bytes in
// order. A pump reads the server's bytes as soon as they are written, so that
// miniredis, which writes under its lock, never waits for a client (a goroutine waiting for a
// mutex would stop the bubble's clock).
type laggyConn struct {
	net.Conn
	latency func() time.Duration
	wake    chan struct{} // cap 1: the queue, the deadline or err changed
	buf     []byte        // the chunk Read is delivering; Read's own

	mu       sync.Mutex
	queue    []lagChunk // guarded by mu
	last     time.Time  // guarded by mu: when the last chunk queued is delivered
	err      error      // guarded by mu: what ended the pump
	deadline time.Time  // guarded by mu: the read deadline
}

type lagChunk struct {
	b  []byte
	at time.Time // when Read may deliver it
}

func newLaggyConn(c net.Conn, latency func() time.Duration) *laggyConn {
	l := &laggyConn{Conn: c, latency: latency, wake: make(chan struct{}, 1)}
	go l.pump()
	return l
}

func (l *laggyConn) signal() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

func (l *laggyConn) pump() {
	b := make([]byte, 32<<10)
	for {
		n, err := l.Conn.Read(b)
		l.mu.Lock()
		if n > 0 {
			at := time.Now().Add(l.latency())
			if at.Before(l.last) {
				at = l.last
			}
			l.last = at
			l.queue = append(l.queue, lagChunk{b: append([]byte(nil), b[:n]...), at: at})
		}
		if err != nil {
			l.err = err
		}
		l.mu.Unlock()
		l.signal()
		if err != nil {
			return
		}
	}
}

func (l *laggyConn) Read(b []byte) (int, error) {
	for len(l.buf) == 0 {
		l.mu.Lock()
		now := time.Now()
		if len(l.queue) > 0 && !l.queue[0].at.After(now) {
			l.buf = l.queue[0].b
			l.queue = l.queue[1:]
			l.mu.Unlock()
			break
		}
		wait := time.Duration(-1)
		if len(l.queue) > 0 {
			wait = l.queue[0].at.Sub(now)
		}
		err, deadline := l.err, l.deadline
		l.mu.Unlock()
		if wait < 0 && err != nil {
			return 0, err
		}
		if !deadline.IsZero() {
			left := deadline.Sub(now)
			if left <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			if wait < 0 || left < wait {
				wait = left
			}
		}
		var timeout <-chan time.Time
		var timer *time.Timer
		if wait >= 0 {
			timer = time.NewTimer(wait)
			timeout = timer.C
		}
		select {
		case <-l.wake:
		case <-timeout:
		}
		if timer != nil {
			timer.Stop()
		}
	}
	n := copy(b, l.buf)
	l.buf = l.buf[n:]
	return n, nil
}

// SetDeadline sets the write deadline of the connection and the read deadline of Read.
func (l *laggyConn) SetDeadline(t time.Time) error {
	_ = l.SetReadDeadline(t)
	return l.Conn.SetWriteDeadline(t)
}

// SetReadDeadline sets the read deadline of Read; the pump reads without one.
func (l *laggyConn) SetReadDeadline(t time.Time) error {
	l.mu.Lock()
	l.deadline = t
	l.mu.Unlock()
	l.signal()
	return nil
}
