package stampede_test

import (
	"context"
	"fmt"
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
	"github.com/stampede-cache/stampede/internal/redistest"
)

// The Sentinel failover test (issue 12): 4 instances over a Sentinel set (sentinelenv_test.go),
// 16 readers and 2 writers on 40 keys, while the primary is failed over gracefully (SENTINEL
// FAILOVER), killed (SIGKILL, then promotion by the Sentinels), or left alone (the control).
//
// The source is a versioned map. Each writer owns half the keys, so the writes of a key are in
// order: it advances a key's version in the source, then Sets it; a Set that returns nil
// acknowledges that version. A read is stale when it returns a version older than one whose
// Set had returned at least sfStaleAfter before the read began.
const (
	sfInstances  = 4
	sfKeys       = 40
	sfHotKeys    = 4 // half the reads go to these
	sfReaders    = 16
	sfWriters    = 2
	sfBefore     = time.Second     // load before the failover
	sfAfter      = 3 * time.Second // load after the new primary is in place
	sfStaleAfter = 100 * time.Millisecond
	sfReadPace   = 2 * time.Millisecond // each reader's pause between reads
	sfWritePace  = 5 * time.Millisecond // each writer's pause between writes
	sfPollEvery  = 25 * time.Millisecond
)

// TestIntegrationSentinelFailover measures reads, writes, stale reads, loads and the switch of
// every instance to the new primary through a Sentinel failover under load, each run on a fresh
// Sentinel set, with the L1 on and off. It asserts no read error and no stale read (a read
// that began 100 ms after a newer version's Set returned and got the older one); it logs the
// rest.
func TestIntegrationSentinelFailover(t *testing.T) {
	for _, event := range []string{"none", "graceful", "hard"} {
		t.Run(event, func(t *testing.T) {
			for _, l1 := range []struct {
				name string
				opts []stampede.Option
			}{
				{"L1", nil},
				{"WithoutL1", []stampede.Option{stampede.WithoutL1()}},
			} {
				t.Run(l1.name, func(t *testing.T) {
					r := runSentinelFailover(t, event, l1.name, l1.opts...)
					r.log(t)
					require.Zero(t, r.readErrors, "read errors; the first: %v", r.firstReadErr)
					// Writes wait for a replica, a changed primary drops the L1 and moves the
					// subscription: no acknowledged write is lost, with or without the L1.
					require.Zero(t, len(r.stale), "stale reads after acknowledged writes")
				})
			}
		})
	}
}

// sfRead is one Get of the run.
type sfRead struct {
	inst, key  int
	start, end time.Time
	version    int // -1 when it failed
	err        error
}

// sfWrite is one Set of the run.
type sfWrite struct {
	inst         int
	key, version int
	start, end   time.Time
	err          error
}

// sfStale is a stale read: it returned version, while expected had been acknowledged since
// lag before it began (lag counts from the first acknowledged version newer than it returned).
type sfStale struct {
	sfRead
	expected int
	lag      time.Duration
}

// sfDB is the source of truth of the run: a version per key, and a log of the loads.
type sfDB struct {
	mu      sync.Mutex
	version [sfKeys]int
	loads   []sfLoad
}

type sfLoad struct {
	key int
	at  time.Time
}

func sfKey(i int) string { return fmt.Sprintf("key-%02d", i) }

func sfKeyIndex(key string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(key, "key-"))
	if err != nil || i < 0 || i >= sfKeys {
		panic("sentinel test: unknown key " + key)
	}
	return i
}

// advance moves key i to its next version and returns it.
func (d *sfDB) advance(i int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.version[i]++
	return d.version[i]
}

// load is the loader of every instance: the key's current version.
func (d *sfDB) load(_ context.Context, key string) (string, error) {
	i := sfKeyIndex(key)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.loads = append(d.loads, sfLoad{i, time.Now()})
	return strconv.Itoa(d.version[i]), nil
}

// sfSwitch is what the poller saw of one instance on the new primary, as times since the
// failover began (zero: not seen).
type sfSwitch struct {
	reads      time.Duration // a connection of the instance ran a command of the cache there
	subscribed time.Duration // its subscription is there, and the cache reports it confirmed
	oldSubLast time.Duration // last time its subscription was seen on the old primary
	oldCmdLast time.Duration // last time a connection of it that had run a cache command was seen there
}

// sfResult is what a run measured.
type sfResult struct {
	event, label string
	loadStart    time.Time
	trigger      time.Time // the failover began (for none: when it would have)
	inPlace      time.Time // a Sentinel reports the new primary, which has the role master
	agreed       time.Time // every Sentinel reports it
	end          time.Time
	reads        []sfRead
	writes       []sfWrite
	readErrors   int
	firstReadErr error
	stale        []sfStale
	loads        []sfLoad
	switches     []sfSwitch
	promoted     time.Duration // the new primary had the role master, since trigger (zero: not seen)
	converted    time.Duration // the old primary became a replica, since trigger (zero: not seen)
	pollGap      time.Duration // the longest interval between two polls
	stats        stampede.Stats
}

// runSentinelFailover runs the load on a fresh Sentinel set through event (none, graceful or
// hard), with the caches' options opts, which label names in the log.
func runSentinelFailover(t *testing.T, event, label string, opts ...stampede.Option) *sfResult {
	set := startSentinelSet(t)
	ns := redistest.Namespace(t)
	opts = append([]stampede.Option{stampede.WithNamespace(ns), stampede.WithRedisTimeout(faultTimeout)}, opts...)
	caches := make([]*stampede.Cache[string], sfInstances)
	for i := range caches {
		c, err := stampede.New[string](set.client(sfInstanceName(i)), opts...)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		caches[i] = c
	}
	// The set has one replica: the only node Sentinel can promote.
	oldPrimary := set.node(set.primaryAddr())
	newPrimary := set.nodes[0]
	if newPrimary == oldPrimary {
		newPrimary = set.nodes[1]
	}

	db := &sfDB{}
	res := &sfResult{event: event, label: label}
	var (
		wg   sync.WaitGroup
		done = make(chan struct{})
		mu   sync.Mutex // guards res.reads and res.writes while the load runs
	)
	stopLoad := sync.OnceFunc(func() {
		close(done)
		wg.Wait()
	})
	defer stopLoad() // a helper's t.Fatal must not leave the readers running
	res.loadStart = time.Now()
	for r := range sfReaders {
		wg.Go(func() {
			inst := r % sfInstances
			c := caches[inst]
			rng := rand.New(rand.NewPCG(uint64(r), 12))
			var mine []sfRead
			for {
				select {
				case <-done:
					mu.Lock()
					res.reads = append(res.reads, mine...)
					mu.Unlock()
					return
				default:
				}
				key := rng.IntN(sfKeys)
				if rng.IntN(2) == 0 {
					key = rng.IntN(sfHotKeys)
				}
				rd := sfRead{inst: inst, key: key, start: time.Now(), version: -1}
				v, err := c.Get(context.Background(), sfKey(key), db.load)
				rd.end = time.Now()
				if err == nil {
					rd.version, err = strconv.Atoi(v)
				}
				rd.err = err
				mine = append(mine, rd)
				time.Sleep(sfReadPace)
			}
		})
	}
	for w := range sfWriters {
		wg.Go(func() {
			var mine []sfWrite
			for n := 0; ; n++ {
				select {
				case <-done:
					mu.Lock()
					res.writes = append(res.writes, mine...)
					mu.Unlock()
					return
				default:
				}
				key := w + sfWriters*(n%(sfKeys/sfWriters)) // this writer's keys, in turn
				wr := sfWrite{inst: (n + w) % sfInstances, key: key, version: db.advance(key), start: time.Now()}
				wr.err = caches[wr.inst].Set(context.Background(), sfKey(key), strconv.Itoa(wr.version))
				wr.end = time.Now()
				mine = append(mine, wr)
				time.Sleep(sfWritePace)
			}
		})
	}

	time.Sleep(sfBefore)
	var stopPoll func()
	res.trigger = time.Now()
	if event != "none" {
		stopPoll = pollSwitch(set, caches, oldPrimary, newPrimary, res)
		defer stopPoll()
	}
	switch event {
	case "none":
		res.inPlace = res.trigger
	case "graceful":
		require.Equal(t, newPrimary, set.gracefulFailover())
		res.inPlace = time.Now()
	case "hard":
		killed, promoted := set.killPrimary()
		require.Equal(t, oldPrimary, killed)
		require.Equal(t, newPrimary, promoted)
		res.inPlace = time.Now()
	}
	if event != "none" {
		set.waitAgree(newPrimary)
		res.agreed = time.Now()
	}
	time.Sleep(time.Until(res.inPlace.Add(sfAfter)))
	stopLoad()
	res.end = time.Now()
	if stopPoll != nil {
		stopPoll()
	}
	res.stats = statsOf(caches)
	db.mu.Lock()
	res.loads = slices.Clone(db.loads)
	db.mu.Unlock()
	res.measure()
	return res
}

func sfInstanceName(i int) string { return "stampede-inst-" + strconv.Itoa(i) }

// pollSwitch watches, every sfPollEvery until the returned function is called, the
// connections of the instances on the new and the old primary (CLIENT LIST, by client name)
// and the roles of both, and fills res.switches, res.promoted, res.converted and res.pollGap.
func pollSwitch(set *sentinelSet, caches []*stampede.Cache[string], oldPrimary, newPrimary *sentinelProc, res *sfResult) (stop func()) {
	res.switches = make([]sfSwitch, len(caches))
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(sfPollEvery)
		defer tick.Stop()
		var last time.Duration
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			since := time.Since(res.trigger)
			res.pollGap, last = max(res.pollGap, since-last), since
			onNew := clientsOf(newPrimary.client)
			onOld := clientsOf(oldPrimary.client)
			for i, c := range caches {
				sw := &res.switches[i]
				name := sfInstanceName(i)
				for _, cl := range onNew[name] {
					if cl.sub && sw.subscribed == 0 && stampede.Subscribed(c) {
						sw.subscribed = since
					}
					if !cl.sub && cl.cacheCmd && sw.reads == 0 {
						sw.reads = since
					}
				}
				for _, cl := range onOld[name] {
					if cl.sub {
						sw.oldSubLast = since
					} else if cl.cacheCmd {
						sw.oldCmdLast = since
					}
				}
			}
			if res.promoted == 0 {
				if role, err := set.role(newPrimary); err == nil && role == "master" {
					res.promoted = since
				}
			}
			if res.converted == 0 {
				if role, err := set.role(oldPrimary); err == nil && role == "slave" {
					res.converted = since
				}
			}
		}
	}()
	return sync.OnceFunc(func() {
		close(done)
		<-finished
	})
}

// sfConn is a connection in CLIENT LIST.
type sfConn struct {
	sub      bool // subscribed to a channel
	cacheCmd bool // its last command was one the cache sends (not a handshake)
}

// clientsOf returns the connections of the node, by client name; nil if it does not answer.
func clientsOf(c *redis.Client) map[string][]sfConn {
	ctx, cancel := context.WithTimeout(context.Background(), 10*sfPollEvery)
	defer cancel()
	list, err := c.ClientList(ctx).Result()
	if err != nil {
		return nil
	}
	conns := map[string][]sfConn{}
	for line := range strings.Lines(list) {
		f := map[string]string{}
		for kv := range strings.FieldsSeq(line) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				f[k] = v
			}
		}
		cmd := f["cmd"]
		handshake := cmd == "" || cmd == "NULL" || cmd == "hello" || cmd == "ping" || strings.HasPrefix(cmd, "client")
		conns[f["name"]] = append(conns[f["name"]], sfConn{sub: f["sub"] != "" && f["sub"] != "0", cacheCmd: !handshake})
	}
	return conns
}

// measure finds the read errors and the stale reads.
func (r *sfResult) measure() {
	// The acknowledged versions of each key, in the order of their writes (and of their
	// acknowledgements: one writer per key).
	acks := make([][]sfWrite, sfKeys)
	for _, w := range r.writes {
		if w.err == nil {
			acks[w.key] = append(acks[w.key], w)
		}
	}
	for k := range acks {
		slices.SortFunc(acks[k], func(a, b sfWrite) int { return a.version - b.version })
	}
	slices.SortFunc(r.reads, func(a, b sfRead) int { return a.start.Compare(b.start) })
	for _, rd := range r.reads {
		if rd.err != nil {
			if r.readErrors == 0 {
				r.firstReadErr = rd.err
			}
			r.readErrors++
			continue
		}
		// The newest version acknowledged sfStaleAfter before the read began.
		before := rd.start.Add(-sfStaleAfter)
		n, _ := slices.BinarySearchFunc(acks[rd.key], before, func(w sfWrite, t time.Time) int {
			if w.end.After(t) {
				return 1
			}
			return -1
		})
		if n == 0 || acks[rd.key][n-1].version <= rd.version {
			continue
		}
		// The first acknowledged version newer than what the read returned.
		first, _ := slices.BinarySearchFunc(acks[rd.key][:n], rd.version, func(w sfWrite, v int) int {
			if w.version > v {
				return 1
			}
			return -1
		})
		r.stale = append(r.stale, sfStale{rd, acks[rd.key][n-1].version, rd.start.Sub(acks[rd.key][first].end)})
	}
}

// log reports the run.
func (r *sfResult) log(t *testing.T) {
	t.Helper()
	rel := func(at time.Time) string { return fmt.Sprintf("%+.2fs", at.Sub(r.trigger).Seconds()) }
	var b strings.Builder
	fmt.Fprintf(&b, "Sentinel failover %q, %s: load from %s to %s (times from the failover's start)\n",
		r.event, r.label, rel(r.loadStart), rel(r.end))
	if r.event != "none" {
		fmt.Fprintf(&b, "  replica promoted (role master) at %s; in place (a Sentinel reports it) at %s; every Sentinel reports it at %s\n",
			sfSeen(r.promoted), rel(r.inPlace), rel(r.agreed))
		switch {
		case r.event == "hard":
			fmt.Fprintf(&b, "  old primary killed at +0.00s\n")
		case r.converted > 0:
			fmt.Fprintf(&b, "  old primary reconfigured as a replica at %+.2fs\n", r.converted.Seconds())
		default:
			fmt.Fprintf(&b, "  old primary still a primary at the end: Sentinel reconfigures it 8 s or more after the switch\n")
		}
	}

	// Reads.
	var readLat []time.Duration
	var errFirst, errLast time.Time
	for _, rd := range r.reads {
		readLat = append(readLat, rd.end.Sub(rd.start))
		if rd.err != nil {
			if errFirst.IsZero() {
				errFirst = rd.start
			}
			errLast = rd.start
		}
	}
	fmt.Fprintf(&b, "  reads: %d, errors %d", len(r.reads), r.readErrors)
	if r.readErrors > 0 {
		fmt.Fprintf(&b, " from %s to %s (first: %v)", rel(errFirst), rel(errLast), r.firstReadErr)
	}
	fmt.Fprintf(&b, "; latency %s\n", sfLatencies(readLat))

	// Writes, before the failover and from its start on.
	var before, after []time.Duration
	var wErrs int
	var wFirst, wLast time.Time
	var wFirstErr error
	for _, w := range r.writes {
		if w.start.Before(r.trigger) {
			before = append(before, w.end.Sub(w.start))
		} else {
			after = append(after, w.end.Sub(w.start))
		}
		if w.err != nil {
			if wErrs == 0 || w.start.Before(wFirst) {
				wFirst, wFirstErr = w.start, w.err
			}
			if w.start.After(wLast) {
				wLast = w.start
			}
			wErrs++
		}
	}
	fmt.Fprintf(&b, "  writes: %d, errors %d", len(r.writes), wErrs)
	if wErrs > 0 {
		fmt.Fprintf(&b, " from %s to %s (first: %v)", rel(wFirst), rel(wLast), wFirstErr)
	}
	fmt.Fprintf(&b, "; latency before %s; from the failover on %s\n", sfLatencies(before), sfLatencies(after))
	if r.event == "graceful" && r.promoted > 0 {
		// A write acknowledged after the replica was promoted, by an instance that had not
		// switched yet, was written on the old primary only.
		gap, unknown := 0, 0
		for _, w := range r.writes {
			sw := r.switches[w.inst].reads
			switch {
			case w.err != nil || w.end.Sub(r.trigger) < r.promoted:
			case sw == 0:
				unknown++
			case w.start.Sub(r.trigger) < sw:
				gap++
			}
		}
		fmt.Fprintf(&b, "  writes acknowledged between the promotion and the writing instance's first command on the new primary "+
			"(on the old primary only): %d; by instances never seen on the new primary: %d\n", gap, unknown)
	}

	// Stale reads.
	fmt.Fprintf(&b, "  stale reads (a version older than one acknowledged %v before the read began): %d of %d (%.2f%%)",
		sfStaleAfter, len(r.stale), len(r.reads), 100*float64(len(r.stale))/float64(max(1, len(r.reads))))
	if len(r.stale) > 0 {
		var byInst [sfInstances]int
		keys := map[int]bool{}
		var maxLag time.Duration
		for _, s := range r.stale {
			byInst[s.inst]++
			keys[s.key] = true
			maxLag = max(maxLag, s.lag)
		}
		fmt.Fprintf(&b, ", from %s to %s, on %d keys, by instance %v, at most %v after the newer version was acknowledged",
			rel(r.stale[0].start), rel(r.stale[len(r.stale)-1].start), len(keys), byInst, maxLag.Round(time.Millisecond))
		for _, s := range r.stale[:min(5, len(r.stale))] {
			fmt.Fprintf(&b, "\n    %s on instance %d at %s: read v%d, expected v%d; v%d had been acknowledged %v before",
				sfKey(s.key), s.inst, rel(s.start), s.version, s.expected, s.version+1, s.lag.Round(time.Millisecond))
		}
	}
	b.WriteString("\n")

	// Loads from the failover's start on.
	perKey := map[int]int{}
	total := 0
	for _, l := range r.loads {
		if !l.at.Before(r.trigger) {
			perKey[l.key]++
			total++
		}
	}
	most, multi := 0, 0
	for _, n := range perKey {
		most = max(most, n)
		if n > 1 {
			multi++
		}
	}
	fmt.Fprintf(&b, "  loads from the failover's start on: %d (%d before it), %d keys, at most %d of a key, %d keys loaded more than once\n",
		total, len(r.loads)-total, len(perKey), most, multi)
	s := r.stats
	fmt.Fprintf(&b, "  stats: %d L1 hits, %d L2 hits, %d misses, %d loads, %d lease waits, %d stale served\n",
		s.L1Hits, s.L2Hits, s.Misses, s.Loads, s.LeaseWaits, s.StaleServed)

	// The switch of each instance.
	if r.switches != nil {
		fmt.Fprintf(&b, "  on the new primary (CLIENT LIST polled every %v, at most %v apart; times from the failover's start):",
			sfPollEvery, r.pollGap.Round(time.Millisecond))
		var lastRead, lastSub time.Duration
		allRead, allSub := true, true
		for i, sw := range r.switches {
			fmt.Fprintf(&b, "\n    instance %d: first cache command %s, subscribed %s", i, sfSeen(sw.reads), sfSeen(sw.subscribed))
			if r.event == "graceful" {
				fmt.Fprintf(&b, "; on the old primary: connections that ran cache commands until %s, subscribed until %s",
					sfSeen(sw.oldCmdLast), sfSeen(sw.oldSubLast))
			}
			allRead = allRead && sw.reads > 0
			allSub = allSub && sw.subscribed > 0
			lastRead, lastSub = max(lastRead, sw.reads), max(lastSub, sw.subscribed)
		}
		fmt.Fprintf(&b, "\n  every instance reads from the new primary: %s; every instance subscribed there: %s",
			sfAll(allRead, lastRead), sfAll(allSub, lastSub))
	}
	t.Log(b.String())
}

func sfSeen(d time.Duration) string {
	if d == 0 {
		return "never"
	}
	return fmt.Sprintf("%+.2fs", d.Seconds())
}

func sfAll(all bool, last time.Duration) string {
	if !all {
		return "not by the end"
	}
	return fmt.Sprintf("%+.2fs", last.Seconds())
}

// sfLatencies formats the p50, p99 and max of d.
func sfLatencies(d []time.Duration) string {
	if len(d) == 0 {
		return "(none)"
	}
	d = slices.Clone(d)
	slices.Sort(d)
	r := func(x time.Duration) time.Duration { return x.Round(10 * time.Microsecond) }
	return fmt.Sprintf("p50 %v p99 %v max %v", r(d[len(d)/2]), r(d[len(d)*99/100]), r(d[len(d)-1]))
}

// TestIntegrationSentinelWriteCost measures what waiting for a replica costs a write: Sets in
// a row on one instance, with WithWriteReplicas(1) (the default) and 0, on the same Sentinel
// set. It logs the latencies; performance is not asserted.
func TestIntegrationSentinelWriteCost(t *testing.T) {
	set := startSentinelSet(t)
	for _, acks := range []int{1, 0} {
		c, err := stampede.New[string](set.client(fmt.Sprint("cost-", acks)),
			stampede.WithNamespace(redistest.Namespace(t)), stampede.WithWriteReplicas(acks),
			stampede.WithRedisTimeout(2*time.Second)) // a slow moment on a busy machine is not a failure here
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		// Writes wait only once the cache has seen the primary's replica.
		require.Eventually(t, func() bool { return acks == 0 || stampede.WriteReplicas(c) == 1 }, 5*time.Second, 10*time.Millisecond)
		took := make([]time.Duration, 2000)
		for i := range took {
			start := time.Now()
			require.NoError(t, c.Set(ctx, fmt.Sprint("k", i%100), "v"))
			took[i] = time.Since(start)
		}
		slices.Sort(took)
		t.Logf("WithWriteReplicas(%d): Set p50 %v p99 %v max %v", acks, took[len(took)/2], took[len(took)*99/100], took[len(took)-1])
	}
}
