package stampede_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/redistest"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// The failover tests run 4 instances on a 6-node cluster of their own (clusterenv_test.go) and
// fail over the master of a few hot keys' slot while readers and writers keep going. The
// instances subscribe (classic SUBSCRIBE) on the master of their channel's slot, and the hot keys
// are put in that very slot, so that the failover takes the subscription down too. (With replica
// reads, go-redis subscribes on the slot's replica instead, which survives the failover.)

const (
	foInstances   = 4
	foKeys        = 40
	foHotKeys     = 8 // of foKeys, in the slot that fails over; half the reads are of them
	foReaders     = 16
	foWriters     = 2
	foWarmUp      = time.Second     // of load before the failover
	foAfter       = 3 * time.Second // of load after the promotion
	foRestart     = time.Second     // after the promotion, a killed master is restarted
	foStaleAfter  = 100 * time.Millisecond
	foReadPace    = time.Millisecond     // per reader
	foWritePause  = 5 * time.Millisecond // per writer, between writes
	foLoadLatency = 2 * time.Millisecond
	foProbeEvery  = 10 * time.Millisecond
	foWatchEvery  = 5 * time.Millisecond
	foSwitch      = time.Second // loads are counted from the failover to this long after the agreement
)

type foScenario struct {
	name         string
	failover     string        // "", "graceful" or "hard"
	lag          time.Duration // hard: the replica is cut off that long before the master dies
	replicaReads bool          // clients with ReadOnly: GETs go to the slot's replica
}

// TestIntegrationClusterFailover fails over the master of hot keys' slot under load: none (the
// control), graceful (CLUSTER FAILOVER), hard (SIGKILL of the master, restarted 1 s after the
// promotion, when it rejoins as a replica), hard-lagging (the same, but the replica is cut off
// 300 ms before the master dies, so that the master acknowledges writes the replica never gets),
// and hard again with clients that read from replicas. Each runs on a cluster of its own, and logs
// what the instances saw: reads and read errors, writes and write errors, stale reads (a read that
// began at least 100 ms after a Set of a newer version had returned, and got an older one),
// acknowledged writes the new master does not have, loads per key during the switch, and when
// each instance could write, read and was subscribed again.
//
// The replica readers use ReadOnly alone: with RouteByLatency, go-redis v9.23.0 races (under
// -race) between the latency probe it starts for a new node and the OnNewNode callback that sets
// the node client's HIMPORT registry, when a failover brings a node into its cluster state.
//
// It asserts that reads never fail (but with replica reads, whose replica may be the node that
// went), that no read is stale, and that the new master has every acknowledged write; the rest
// is logged.
func TestIntegrationClusterFailover(t *testing.T) {
	for _, sc := range []foScenario{
		{name: "none"},
		{name: "graceful", failover: "graceful"},
		{name: "hard", failover: "hard"},
		{name: "hard-lagging", failover: "hard", lag: 300 * time.Millisecond},
		{name: "replica-reads", failover: "hard", replicaReads: true},
	} {
		t.Run(sc.name, func(t *testing.T) { runFailoverScenario(t, sc) })
	}
}

// versionDB is the source of truth of the failover tests: a version per key, which a writer
// advances before it Sets it; the loader returns the current version.
type versionDB struct {
	mu      sync.Mutex
	version map[string]int
	sets    map[string][]setDone // by key, in the order the writes returned
	loads   []loadAt
}

// setDone is a Set that returned nil: version v of a key was written by at.
type setDone struct {
	v  int
	at time.Time
}

type loadAt struct {
	key string
	at  time.Time
}

func newVersionDB(keys []string) *versionDB {
	d := &versionDB{version: map[string]int{}, sets: map[string][]setDone{}}
	for _, k := range keys {
		d.version[k] = 1
	}
	return d
}

func (d *versionDB) advance(key string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.version[key]++
	return d.version[key]
}

func (d *versionDB) setReturned(key string, v int, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sets[key] = append(d.sets[key], setDone{v, at})
}

func (d *versionDB) load(ctx context.Context, key string) (string, error) {
	select {
	case <-time.After(foLoadLatency):
	case <-ctx.Done():
		return "", ctx.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.loads = append(d.loads, loadAt{key, time.Now()})
	return strconv.Itoa(d.version[key]), nil
}

// newestBefore returns the newest version of key whose Set had returned by t, or a zero setDone.
func (d *versionDB) newestBefore(key string, t time.Time) setDone {
	d.mu.Lock()
	defer d.mu.Unlock()
	var best setDone
	for _, s := range d.sets[key] { // one writer per key: versions grow with the times
		if s.at.After(t) {
			break
		}
		best = s
	}
	return best
}

// foRead is one Get of the load.
type foRead struct {
	inst  int
	key   string
	start time.Time
	took  time.Duration
	v     int
	err   error
}

// foStale is a stale read, and the newer version whose Set had returned 100 ms before it began.
type foStale struct {
	foRead
	newer setDone
}

// foWrite is one Set of the load.
type foWrite struct {
	key        string
	start, end time.Time
	err        error
}

// foProbes is what one instance's probes saw: Sets of its probe key (in the hot slot) and GETs
// of its value key through the instance's client, every 10 ms each; and, every 5 ms, its
// subscription and its count of Redis errors.
type foProbes struct {
	sets, gets []foTry
	subs       []foFlip    // changes of stampede.Subscribed; the first is the state at the start
	redisErrs  []time.Time // when the count of Redis errors was seen to grow
}

// foTry is one probe: when it ended, and its error.
type foTry struct {
	at  time.Time
	err error
}

type foFlip struct {
	at time.Time
	on bool
}

// subscribedAt reports whether the instance was subscribed at t, as far as the probes saw.
func (p *foProbes) subscribedAt(t time.Time) bool {
	on := true
	for _, f := range p.subs {
		if f.at.After(t) {
			break
		}
		on = f.on
	}
	return on
}

// keysInSlot returns n keys named prefix-<i> whose value keys in ns hash to slot.
func keysInSlot(ns, prefix string, slot, n int) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := prefix + "-" + strconv.Itoa(i)
		if scripts.Slot(scripts.ValueKey(ns, k)) == slot {
			keys = append(keys, k)
		}
	}
	return keys
}

func runFailoverScenario(t *testing.T, sc foScenario) {
	cl := startCluster(t)
	goRedisLog := quietRedisLog(t)
	ns := redistest.Namespace(t)
	hotSlot := scripts.Slot(scripts.Channel(ns))
	failing := cl.masterOf(hotSlot)
	hot := keysInSlot(ns, "hot", hotSlot, foHotKeys)
	keys := slices.Clone(hot)
	for i := 0; len(keys) < foKeys; i++ {
		keys = append(keys, "key-"+strconv.Itoa(i))
	}
	onFailing := map[string]bool{}
	for _, k := range keys {
		onFailing[k] = cl.masterOf(scripts.Slot(scripts.ValueKey(ns, k))) == failing
	}
	probeKeys := keysInSlot(ns, "probe", hotSlot, foInstances)

	db := newVersionDB(keys)
	var (
		caches  []*stampede.Cache[string]
		clients []*redis.ClusterClient
	)
	for range foInstances {
		cc := cl.client(func(o *redis.ClusterOptions) {
			o.ReadOnly = sc.replicaReads
		})
		c, err := stampede.New[string](cc, stampede.WithNamespace(ns), stampede.WithRedisTimeout(faultTimeout))
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		require.True(t, stampede.Subscribed(c))
		caches, clients = append(caches, c), append(clients, cc)
	}
	for _, c := range caches { // every key in Redis and every L1, as in a running service
		for _, k := range keys {
			_, err := c.Get(ctx, k, db.load)
			require.NoError(t, err)
		}
	}
	statsStart := make([]stampede.Stats, len(caches))
	for i, c := range caches {
		statsStart[i] = c.Stats()
	}
	getsStart, rolesStart := cl.commandCalls("get"), cl.roles()

	// The load: readers, writers, and the probes of each instance, until stop.
	var (
		wg       sync.WaitGroup
		done     = make(chan struct{})
		mu       sync.Mutex
		reads    []foRead
		writes   []foWrite
		probes   = make([]foProbes, foInstances)
		stopOnce sync.Once
	)
	stop := func() { stopOnce.Do(func() { close(done); wg.Wait() }) }
	t.Cleanup(stop)
	every := func(d time.Duration, f func()) {
		wg.Go(func() {
			tick := time.NewTicker(d)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					f()
				}
			}
		})
	}
	readPace := foReadPace
	if raceEnabled { // leave the cache's own goroutines (the subscription's) some CPU
		readPace *= 4
	}
	t0 := time.Now()
	for r := range foReaders {
		inst := r % foInstances
		c := caches[inst]
		rng := rand.New(rand.NewPCG(uint64(r), uint64(t0.UnixNano())))
		every(readPace, func() {
			key := hot[rng.IntN(len(hot))]
			if rng.IntN(2) == 0 {
				key = keys[len(hot)+rng.IntN(len(keys)-len(hot))]
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			start := time.Now()
			s, err := c.Get(rctx, key, db.load)
			took := time.Since(start)
			v := 0
			if err == nil {
				if v, err = strconv.Atoi(s); err != nil {
					err = fmt.Errorf("got %q: %w", s, err)
				}
			}
			mu.Lock()
			reads = append(reads, foRead{inst, key, start, took, v, err})
			mu.Unlock()
		})
	}
	for w := range foWriters {
		var own []string // every other key, hot or not: each key has one writer, which writes it in order
		for i := w; i < len(keys); i += foWriters {
			own = append(own, keys[i])
		}
		n := 0
		every(foWritePause, func() {
			key, c := own[n%len(own)], caches[(n+w)%foInstances]
			n++
			v := db.advance(key)
			start := time.Now()
			err := c.Set(ctx, key, strconv.Itoa(v))
			end := time.Now()
			if err == nil {
				db.setReturned(key, v, end)
			}
			mu.Lock()
			writes = append(writes, foWrite{key, start, end, err})
			mu.Unlock()
		})
	}
	for i := range foInstances {
		c, cc, key, rk, p := caches[i], clients[i], probeKeys[i], scripts.ValueKey(ns, probeKeys[i]), &probes[i]
		n := 0
		every(foProbeEvery, func() {
			n++
			err := c.Set(ctx, key, strconv.Itoa(n))
			p.sets = append(p.sets, foTry{time.Now(), err})
		})
		every(foProbeEvery, func() {
			gctx, cancel := context.WithTimeout(ctx, faultTimeout)
			defer cancel()
			err := cc.Get(gctx, rk).Err()
			if errors.Is(err, redis.Nil) {
				err = nil
			}
			p.gets = append(p.gets, foTry{time.Now(), err})
		})
		p.subs = []foFlip{{time.Now(), stampede.Subscribed(c)}}
		lastErrs := c.Stats().RedisErrors
		every(foWatchEvery, func() {
			now, on, errs := time.Now(), stampede.Subscribed(c), c.Stats().RedisErrors
			if on != p.subs[len(p.subs)-1].on {
				p.subs = append(p.subs, foFlip{now, on})
			}
			if errs != lastErrs {
				p.redisErrs, lastErrs = append(p.redisErrs, now), errs
			}
		})
	}

	time.Sleep(time.Until(t0.Add(foWarmUp)))
	getsWarm := cl.commandCalls("get")
	var ev failoverEvent
	var lost map[string]lostWrite
	restarted := ""
	switch sc.failover {
	case "graceful":
		ev = cl.gracefulFailover(hotSlot)
		lost = lostWrites(db, ev, ns, keys, onFailing)
	case "hard":
		if sc.lag > 0 {
			ev = cl.killMasterLagging(hotSlot, sc.lag)
		} else {
			ev = cl.killMaster(hotSlot)
		}
		lost = lostWrites(db, ev, ns, keys, onFailing)
		time.Sleep(time.Until(ev.promoted.Add(foRestart)))
		start := time.Now()
		cl.restart(ev.old)
		restarted = fmt.Sprintf("; %s restarted at %s, a replica with its link up %v later",
			ev.old, foRel(ev, start), time.Since(start).Round(time.Millisecond))
		if sc.lag > 0 {
			restarted = fmt.Sprintf(" (its replica cut off %v before)", sc.lag) + restarted
		}
	default:
		now := time.Now()
		ev = failoverEvent{old: failing, new: failing, start: now, promoted: now, agreed: now}
	}
	time.Sleep(time.Until(ev.promoted.Add(foAfter)))
	stop()
	end := time.Now()
	rel := func(at time.Time) string { return foRel(ev, at) }

	t.Logf("%s: hot slot %d (the channel's) on %s, with %d of the %d keys; load from %s to %s (times from the promotion)",
		sc.name, hotSlot, failing, foCount(keys, func(k string) bool { return onFailing[k] }), len(keys), rel(t0), rel(end))
	if sc.failover != "" {
		var ex []string
		for _, k := range slices.Sorted(maps.Keys(lost)) {
			ex = append(ex, fmt.Sprintf("%s has v%d, v%d returned %v before", k, lost[k].have, lost[k].acked.v,
				ev.start.Sub(lost[k].acked.at).Round(time.Millisecond)))
		}
		t.Logf("failover %s at %s%s; acknowledged writes the new master lacks: %d%s", ev, rel(ev.start), restarted,
			len(lost), foExamples(ex, 2))
	}

	// Reads, and the stale ones.
	var readErrs []foRead
	var took []time.Duration
	var stale []foStale
	slices.SortFunc(reads, func(a, b foRead) int { return a.start.Compare(b.start) })
	for _, r := range reads {
		took = append(took, r.took)
		if r.err != nil {
			readErrs = append(readErrs, r)
			continue
		}
		if s := db.newestBefore(r.key, r.start.Add(-foStaleAfter)); s.v > r.v {
			stale = append(stale, foStale{r, s})
		}
	}
	slices.Sort(took)
	firstErr := ""
	if len(readErrs) > 0 {
		firstErr = fmt.Sprintf(" (first: %q on #%d at %s: %v)", readErrs[0].key, readErrs[0].inst, rel(readErrs[0].start), readErrs[0].err)
	}
	t.Logf("reads: %d, %d errors%s; latency p50 %v p99 %v max %v", len(reads), len(readErrs), firstErr,
		foPct(took, 50), foPct(took, 99), foPct(took, 100))
	t.Logf("%s", staleReport(stale, sc.failover != "", ev, hot, onFailing, probes, lost))

	// Writes.
	var werrs []foWrite
	kinds := map[string]int{}
	for _, w := range writes {
		if w.err != nil {
			werrs = append(werrs, w)
			kinds[errKind(w.err)]++
		}
	}
	writesLine := fmt.Sprintf("writes: %d, no errors", len(writes))
	if len(werrs) > 0 {
		first, last := werrs[0], werrs[0]
		for _, w := range werrs {
			if w.start.Before(first.start) {
				first = w
			}
			if w.end.After(last.end) {
				last = w
			}
		}
		writesLine = fmt.Sprintf("writes: %d, %d errors, begun from %s, returned until %s (%v): %v", len(writes), len(werrs),
			rel(first.start), rel(last.end), last.end.Sub(first.start).Round(time.Millisecond), kinds)
	}

	// Loads per key, from the failover to a moment after the agreement.
	to := ev.agreed.Add(foSwitch)
	before, during := map[string]int{}, map[string]int{}
	db.mu.Lock()
	for _, l := range db.loads {
		switch {
		case l.at.Before(t0):
		case l.at.Before(ev.start):
			before[l.key]++
		case l.at.Before(to):
			during[l.key]++
		}
	}
	db.mu.Unlock()
	t.Logf("%s\nloads from %s to %s: hot keys %s; the failed master's other keys %s; elsewhere %s (in the %v before: %d)",
		writesLine, rel(ev.start), rel(to), loadSpread(during, hot),
		loadSpread(during, foFilter(keys[len(hot):], func(k string) bool { return onFailing[k] })),
		loadSpread(during, foFilter(keys, func(k string) bool { return !onFailing[k] })),
		ev.start.Sub(t0).Round(time.Millisecond), foSum(before))

	// Recovery of each instance.
	var rec []string
	same := true
	for i := range probes {
		r := probes[i].report(ev)
		same = same && r == probes[0].report(ev)
		rec = append(rec, fmt.Sprintf("#%d %s", i, r))
	}
	if same {
		rec = []string{"all: " + probes[0].report(ev)}
	}
	rec = append(rec, "subscriptions at the end: "+cl.subscribers())
	t.Logf("each instance (Set and GET of a key in the hot slot, SUBSCRIBED, Redis errors):\n\t%s", strings.Join(rec, "\n\t"))

	var st stampede.Stats
	for i, c := range caches {
		s, s0 := c.Stats(), statsStart[i]
		st.L1Hits += s.L1Hits - s0.L1Hits
		st.L2Hits += s.L2Hits - s0.L2Hits
		st.Misses += s.Misses - s0.Misses
		st.Loads += s.Loads - s0.Loads
		st.FencedLoads += s.FencedLoads - s0.FencedLoads
		st.RedisErrors += s.RedisErrors - s0.RedisErrors
	}
	gets := ""
	if sc.replicaReads {
		var m, r int64
		for n, calls := range getsWarm {
			if rolesStart[n] == "slave" {
				r += calls - getsStart[n]
			} else {
				m += calls - getsStart[n]
			}
		}
		gets = fmt.Sprintf("; GETs before the failover: %d on masters, %d on replicas", m, r)
	}
	t.Logf("stats: L1 hits %d, L2 hits %d, misses %d, loads %d, fenced loads %d, Redis errors %d%s; go-redis logged %s",
		st.L1Hits, st.L2Hits, st.Misses, st.Loads, st.FencedLoads, st.RedisErrors, gets, goRedisLog)

	if !sc.replicaReads {
		require.Empty(t, readErrs, "reads never fail")
	}
	// Writes wait for a replica, a lost subscription makes the L1 forget fast, and a changed
	// master drops it: no stale read, and no acknowledged write lost, in any failover.
	require.Empty(t, stale, "no stale read after an acknowledged write")
	require.Empty(t, lost, "no acknowledged write lost")
}

// foRel returns the time of at from the promotion of e.
func foRel(e failoverEvent, at time.Time) string {
	return fmt.Sprintf("%+dms", at.Sub(e.promoted).Milliseconds())
}

// lostWrite is an acknowledged write that the new master lacks: it has version have of the key.
type lostWrite struct {
	have  int
	acked setDone
}

// lostWrites returns the keys on the failed master whose value on the new master, read as soon as
// every node agrees on it, is older than a Set that had returned before the failover began.
func lostWrites(db *versionDB, e failoverEvent, ns string, keys []string, onFailing map[string]bool) map[string]lostWrite {
	lost := map[string]lostWrite{}
	for _, k := range keys {
		if !onFailing[k] {
			continue
		}
		acked := db.newestBefore(k, e.start)
		raw, err := e.new.admin.Get(ctx, scripts.ValueKey(ns, k)).Result()
		v := 0
		if err == nil {
			_, payload, perr := envelope.ParseString(raw)
			var s string
			if perr == nil && json.Unmarshal([]byte(payload), &s) == nil {
				v, _ = strconv.Atoi(s)
			}
		} else if !errors.Is(err, redis.Nil) {
			v = -1 // unknown
		}
		if v < acked.v {
			lost[k] = lostWrite{v, acked}
		}
	}
	return lost
}

// staleReport describes the stale reads: how many before, during and after the failover, of which
// keys, on which instances, while subscribed or not, how many got what the new master had in place
// of a lost write, and a few of them.
func staleReport(stale []foStale, failover bool, e failoverEvent, hot []string, onFailing map[string]bool,
	probes []foProbes, lost map[string]lostWrite) string {
	if len(stale) == 0 {
		return "stale reads: 0"
	}
	rel := func(at time.Time) string { return foRel(e, at) }
	var hotN, failN, unsub, ofLost int
	var subscribed []foStale
	var inst [foInstances]int
	phase := map[string]int{}
	keys := map[string]bool{}
	for _, s := range stale {
		inst[s.inst]++
		keys[s.key] = true
		switch {
		case slices.Contains(hot, s.key):
			hotN++
		case onFailing[s.key]:
			failN++
		}
		if !probes[s.inst].subscribedAt(s.start) {
			unsub++
		} else {
			subscribed = append(subscribed, s)
		}
		if l, ok := lost[s.key]; ok && !s.start.Before(e.start) && s.v <= l.have {
			ofLost++
		}
		switch {
		case !failover:
		case s.start.Before(e.start):
			phase["before"]++
		case s.start.Before(e.agreed):
			phase["during"]++
		default:
			phase["after"]++
		}
	}
	var ex []string
	example := func(s foStale, note string) {
		ex = append(ex, fmt.Sprintf("#%d read %s at %s: got v%d, v%d had returned at %s%s", s.inst, s.key, rel(s.start), s.v,
			s.newer.v, rel(s.newer.at), note))
	}
	for _, i := range slices.Compact([]int{0, len(stale) / 2, len(stale) - 1}) {
		example(stale[i], "")
	}
	if n := len(subscribed); n > 0 { // the surprising ones
		example(subscribed[0], " (subscribed)")
		if n > 1 {
			example(subscribed[n-1], " (subscribed)")
		}
	}
	return fmt.Sprintf("stale reads: %d %v, from %s to %s, of %d keys (%d reads of hot keys, %d of the failed master's "+
		"others, %d elsewhere), per instance %v; %d while the instance was not subscribed, %d of a lost write's "+
		"predecessor; e.g.\n\t%s",
		len(stale), phase, rel(stale[0].start), rel(stale[len(stale)-1].start), len(keys), hotN, failN,
		len(stale)-hotN-failN, inst, unsub, ofLost, strings.Join(ex, "\n\t"))
}

// report describes when the instance's Sets and GETs failed from the failover on and when they
// succeeded again, when it was not subscribed, and its last Redis error.
func (p *foProbes) report(e failoverEvent) string {
	rel := func(at time.Time) string { return foRel(e, at) }
	tries := func(what string, ts []foTry) string {
		var n int
		var first, last foTry
		for _, x := range ts {
			if x.err != nil && !x.at.Before(e.start) {
				if n == 0 {
					first = x
				}
				n, last = n+1, x
			}
		}
		if n == 0 {
			return what + " never failed"
		}
		s := fmt.Sprintf("%s failed %d× from %s to %s (%s), ", what, n, rel(first.at), rel(last.at), errKind(first.err))
		for _, x := range ts {
			if x.at.After(last.at) {
				return s + "ok from " + rel(x.at)
			}
		}
		return s + "not ok by the end"
	}
	out := []string{tries("Set", p.sets), tries("GET", p.gets)}
	var down []string
	for i, f := range p.subs {
		switch {
		case i == 0 && !f.on:
			down = append(down, "not subscribed at the start")
		case i > 0 && !f.on:
			down = append(down, "unsubscribed at "+rel(f.at))
		case i > 0:
			down = append(down, "subscribed at "+rel(f.at))
		}
	}
	if len(down) == 0 {
		down = []string{"subscribed throughout"}
	} else if !p.subs[len(p.subs)-1].on {
		down = append(down, "not subscribed at the end")
	}
	out = append(out, strings.Join(down, ", "))
	if n := len(p.redisErrs); n > 0 {
		out = append(out, "last Redis error at "+rel(p.redisErrs[n-1]))
	}
	return strings.Join(out, "; ")
}

// errKind names the kind of a Redis error: its upper-case prefix (READONLY, CLUSTERDOWN, MOVED...)
// or the last part of its message (i/o timeout, connection refused...).
func errKind(err error) string {
	for _, f := range strings.Fields(err.Error()) {
		if len(f) >= 4 && strings.ToUpper(f) == f && strings.Trim(f, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
			return f
		}
	}
	return shortErr(err)
}

func foCount[T any](s []T, f func(T) bool) int { return len(foFilter(s, f)) }

func foFilter[T any](s []T, f func(T) bool) []T {
	var out []T
	for _, x := range s {
		if f(x) {
			out = append(out, x)
		}
	}
	return out
}

func foSum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// foPct returns the p-th percentile of sorted ds (100: the maximum).
func foPct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return ds[min(len(ds)-1, len(ds)*p/100)].Round(time.Microsecond)
}

func foExamples(s []string, n int) string {
	if len(s) == 0 {
		return ""
	}
	more := ""
	if len(s) > n {
		s, more = s[:n], ", ..."
	}
	return " (" + strings.Join(s, ", ") + more + ")"
}

// loadSpread sums the loads of keys, and names the key loaded most.
func loadSpread(loads map[string]int, keys []string) string {
	n, most, which := 0, 0, ""
	for _, k := range keys {
		n += loads[k]
		if loads[k] > most {
			most, which = loads[k], k
		}
	}
	if n == 0 {
		return fmt.Sprintf("0 (%d keys)", len(keys))
	}
	return fmt.Sprintf("%d (%d keys, at most %d of %s)", n, len(keys), most, which)
}
