package stampede_test

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// The cluster tests run against the Redis Cluster in STAMPEDE_REDIS_CLUSTER_ADDRS (.ci/cluster
// starts one), and skip without it (fail with STAMPEDE_REQUIRE_INTEGRATION=1).

// clusterFleet starts n caches on the cluster, each with a ClusterClient of its own, as n
// instances of a service.
func clusterFleet(t *testing.T, ns string, n int, opts ...stampede.Option) []*stampede.Cache[string] {
	t.Helper()
	opts = append([]stampede.Option{stampede.WithNamespace(ns)}, opts...)
	caches := make([]*stampede.Cache[string], n)
	for i := range caches {
		c, err := stampede.New[string](redistest.Cluster(t), opts...)
		require.NoError(t, err)
		require.True(t, stampede.Subscribed(c))
		t.Cleanup(func() { _ = c.Close() })
		caches[i] = c
	}
	return caches
}

// oddKeys are user keys whose bytes could break a key layout: hash-tag braces where Redis
// Cluster looks for them, separators, spaces, unicode, NUL bytes, invalid UTF-8.
var oddKeys = []string{
	"k", "user:celeb", "a:b:c:", ":",
	"{a}", "{", "}", "}{", "{}", "a}b", "a{b", "{a}:{b}", "}lead", "}}", "{{}}", "x{}y",
	"with space", " ", "line\nbreak", "tab\tcr\r",
	"ünïcødé ✓", "日本語のキー", "🔥",
	"\x00", "\x00}", "\x00\x00", "nul\x00mid", "end\x00",
	"\xff\xfe", "\xc3\x28",
}

// TestClusterKeySlots asks the cluster where the keys of odd user keys live: the value, the
// lease and the fence of a key always share a slot, so the scripts run; and the cache works on
// each of those keys end to end.
func TestClusterKeySlots(t *testing.T) {
	cc := redistest.Cluster(t)
	for _, ns := range []string{"stampede", "a:b", "ns:with:colons:", "space ns", "ünï", redistest.Namespace(t)} {
		for _, key := range oddKeys {
			k := scripts.KeysFor(ns, key)
			var slots []int64
			for _, name := range []string{k.Value, k.Lock, k.Gen} {
				slot, err := cc.ClusterKeySlot(ctx, name).Result()
				require.NoError(t, err)
				require.EqualValues(t, keySlot(name), slot, "our CRC16 agrees with the cluster on %q", name)
				slots = append(slots, slot)
			}
			require.Equal(t, slots[0], slots[1], "namespace %q, key %q: %q and %q", ns, key, k.Value, k.Lock)
			require.Equal(t, slots[0], slots[2], "namespace %q, key %q: %q and %q", ns, key, k.Value, k.Gen)
		}
	}

	// Every write and read of each key runs on the cluster (a multi-key script whose keys were
	// in two slots would fail with CROSSSLOT).
	caches := clusterFleet(t, redistest.Namespace(t), 2)
	a, b := caches[0], caches[1]
	for _, key := range oddKeys {
		load := func(v string) stampede.Loader[string] {
			return func(context.Context, string) (string, error) { return v, nil }
		}
		v, err := a.Get(ctx, key, load("loaded"))
		require.NoError(t, err, "%q", key)
		require.Equal(t, "loaded", v)
		// The value is the key quoted: JSONCodec would replace the invalid UTF-8 of a raw key.
		set := strconv.Quote(key)
		require.NoError(t, a.Set(ctx, key, set), "%q", key)
		require.Eventually(t, func() bool {
			v, err := b.Get(ctx, key, load("unused"))
			return err == nil && v == set
		}, time.Second, time.Millisecond, "%q", key)
		require.NoError(t, a.Invalidate(ctx, key), "%q", key)
		v, err = a.Refresh(ctx, key, load("refreshed"))
		require.NoError(t, err, "%q", key)
		require.Equal(t, "refreshed", v)
		require.NoError(t, a.Delete(ctx, key), "%q", key)
		// B's L1 holds the value until the Delete's message reaches B.
		require.Eventually(t, func() bool {
			v, err := b.Get(ctx, key, load("reloaded"))
			return err == nil && v == "reloaded"
		}, time.Second, time.Millisecond, "%q", key)
	}
	for _, c := range caches {
		require.Zero(t, c.Stats().RedisErrors)
	}
}

// TestClusterNotifications: on the cluster, a waiter on one instance is woken by the other's
// fill (not by polling), and a write on one instance evicts the key from the other's L1.
func TestClusterNotifications(t *testing.T) {
	caches := clusterFleet(t, redistest.Namespace(t), 2, stampede.WithL1(1000, 30*time.Second))
	a, b := caches[0], caches[1]

	src := newSource("v")
	started, release := src.hold()
	leader := make(chan error, 1)
	go func() {
		_, err := a.Get(ctx, "waited", src.load)
		leader <- err
	}()
	<-started
	waiter := make(chan time.Time, 1)
	go func() {
		v, err := b.Get(ctx, "waited", src.load)
		if err != nil || v != "v" {
			t.Errorf("waiter: %q, %v", v, err)
		}
		waiter <- time.Now()
	}()
	require.Eventually(t, func() bool { return b.Stats().LeaseWaits == 1 }, 5*time.Second, time.Millisecond)
	released := time.Now()
	release()
	require.NoError(t, <-leader)
	lag := (<-waiter).Sub(released)
	t.Logf("the waiter returned %v after the load ended", lag)
	require.Less(t, lag, 50*time.Millisecond, "notified, not polling (every 100 ms)")
	require.EqualValues(t, 1, src.calls.Load())

	delays := coherenceDelays(t, a, b, 200)
	// The message crosses the cluster bus when B subscribed on another node than the one that
	// ran the write: a few milliseconds more than on a single node.
	require.Less(t, delays[100], 20*time.Millisecond)
	require.Less(t, delays[198], 100*time.Millisecond)
}

// TestClusterStampede is TestIntegrationStampede on the cluster: 2,000 callers on 8 instances
// read a just-deleted key whose lookup takes 50 ms, and PostgreSQL runs one query.
func TestClusterStampede(t *testing.T) {
	redistest.ClusterAddrs(t)
	db := newProfiles(t, 50*time.Millisecond)
	require.NoError(t, db.pool.Ping(ctx))
	caches := clusterFleet(t, redistest.Namespace(t), 8)
	for _, c := range caches { // connections are open, as in a running service
		_, err := c.Get(ctx, "warm-up", func(context.Context, string) (string, error) { return "", nil })
		require.NoError(t, err)
	}
	require.NoError(t, caches[0].Delete(ctx, "user:celeb"))

	const callers = 2000
	done := make([]time.Time, callers)
	values, errs, start := getAllTimed(ctx, caches, callers, "user:celeb", db.load, done)
	for i := range values {
		require.NoError(t, errs[i])
		require.Equal(t, "Celeb", values[i])
	}
	require.Equal(t, 1, db.queries(t), "queries the database ran")
	latency := make([]time.Duration, callers)
	for i := range done {
		latency[i] = done[i].Sub(start)
	}
	slices.Sort(latency)
	t.Logf("1 query; latency %v (p50) %v (p99) %v (max); the load ran from %v to %v",
		latency[callers/2], latency[callers*99/100], latency[callers-1], db.loadStart.Sub(start), db.loadEnd.Sub(start))
}

// TestClusterSlotMigration moves the slot of a hot key to another master and back while 8
// instances read it (without L1, so that every read goes to Redis) and one instance writes it
// every 5 ms (Set, Invalidate, Delete, Refresh in turn, so that leases, loads and fills run all
// along). The slot is held in each step of the migration (importing and migrating, one key
// moved, all moved, reassigned) while 200 reads go by. No read returns an error; writes may
// fail while the slot moves (Redis Cluster refuses a script whose keys are split between two
// nodes with TRYAGAIN), and are counted.
func TestClusterSlotMigration(t *testing.T) {
	cl := newClusterAdmin(t)
	ns := redistest.Namespace(t)
	caches := clusterFleet(t, ns, 8, stampede.WithoutL1(), stampede.WithTTL(time.Second),
		stampede.WithLeaseTTL(500*time.Millisecond))
	key := "hot-" + ns // a slot no other test uses, most likely
	slot := keySlot(scripts.ValueKey(ns, key))
	home := cl.owner(t, slot)
	away := cl.other(home)
	t.Cleanup(func() {
		if t.Failed() {
			cl.settle(t, slot, home)
		}
	})
	// Neighbours: other keys of the slot, so that the migration moves dozens of keys in
	// batches and the keys of one user key are split between the nodes from time to time.
	neighbours := []string{key}
	for i := 0; len(neighbours) < 20; i++ {
		if k := fmt.Sprint("n", i, "-", ns); keySlot(scripts.ValueKey(ns, k)) == slot {
			neighbours = append(neighbours, k)
		}
	}
	for _, n := range neighbours {
		require.NoError(t, caches[0].Set(ctx, n, "seed")) // a value and a fence each
	}
	t.Logf("key %q and %d neighbours: slot %d, on %s; moving it to %s and back", key, len(neighbours)-1, slot, cl.addr[home], cl.addr[away])

	var loads atomic.Int64
	load := func(ctx context.Context, key string) (string, error) {
		loads.Add(1)
		time.Sleep(2 * time.Millisecond)
		return "loaded", nil
	}
	var (
		gets, getErrs  atomic.Int64
		writes         atomic.Int64
		mu             sync.Mutex
		firstErrs      []error
		writeErrs      = map[string]int{}
		readTimes      []time.Duration
		writeTimes     []time.Duration
		stop           = make(chan struct{})
		wg             sync.WaitGroup
		redisErrsStart = redisErrors(caches)
	)
	stopLoad := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	t.Cleanup(stopLoad) // before the slot goes home, if the test fails halfway
	for i := range 8 * 3 {
		c := caches[i%len(caches)]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				v, err := c.Get(ctx, key, load)
				d := time.Since(start)
				gets.Add(1)
				mu.Lock()
				readTimes = append(readTimes, d)
				if err != nil || v == "" {
					getErrs.Add(1)
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, fmt.Errorf("%q, %w", v, err))
					}
				}
				mu.Unlock()
			}
		})
	}
	for w := range 2 {
		wg.Go(func() { // a write path: write-through, soft and hard invalidation, refresh
			for i := w; ; i += 2 {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Millisecond):
				}
				c := caches[i%2]
				key := neighbours[i%len(neighbours)]
				var op string
				var err error
				start := time.Now()
				switch i % 4 {
				case 0:
					op, err = "set", c.Set(ctx, key, fmt.Sprint("set-", i))
				case 1:
					op, err = "invalidate", c.Invalidate(ctx, key)
				case 2:
					op, err = "delete", c.Delete(ctx, key)
				case 3:
					op = "refresh"
					_, err = c.Refresh(ctx, key, load)
				}
				writes.Add(1)
				d := time.Since(start)
				mu.Lock()
				writeTimes = append(writeTimes, d)
				if err != nil {
					writeErrs[op+": "+shortErr(err)]++
				}
				mu.Unlock()
			}
		})
	}
	// hold lets the load run on until 200 more reads have returned.
	hold := func(step string) {
		t.Helper()
		from := gets.Load()
		require.Eventually(t, func() bool { return gets.Load() >= from+200 }, 10*time.Second, time.Millisecond,
			"reads stalled while %s", step)
	}
	hold("warming up")
	start := time.Now()
	cl.moveSlot(t, slot, home, away, hold)
	cl.moveSlot(t, slot, away, home, hold)
	took := time.Since(start)
	stopLoad()

	stats := statsOf(caches)
	redisErrs := redisErrors(caches)
	rp99, rmax := tail(readTimes)
	wp99, wmax := tail(writeTimes)
	t.Logf("slot moved there and back in %v; %d reads, %d read errors, read p99 %v max %v; %d loads; "+
		"%d writes, failed: %v, write p99 %v max %v; %d Redis errors reported to Stats; L2 hits %d, misses %d",
		took, gets.Load(), getErrs.Load(), rp99, rmax, loads.Load(), writes.Load(), writeErrs, wp99, wmax,
		redisErrs-redisErrsStart, stats.L2Hits, stats.Misses)
	require.Zero(t, getErrs.Load(), "reads never fail: %v", firstErrs)
	// Writes retry while the slot moves, and a write whose keys Redis refuses with TRYAGAIN
	// (some exist on the node, some do not) falls back to single-key scripts: none fails.
	require.Empty(t, writeErrs, "writes never fail while the slot moves")
	require.Equal(t, home, cl.owner(t, slot))
	cl.requireStable(t, slot)
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "\n"); i >= 0 {
		s = s[:i]
	}
	// Keep the Redis error's kind (TRYAGAIN, ASK, MOVED, i/o timeout...), not the key or address.
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	if f := strings.Fields(s); len(f) > 0 && strings.ToUpper(f[0]) == f[0] {
		return f[0]
	}
	return s
}

func redisErrors(caches []*stampede.Cache[string]) uint64 {
	var n uint64
	for _, c := range caches {
		n += c.Stats().RedisErrors
	}
	return n
}

// clusterAdmin talks to each master of the cluster directly, to move slots.
type clusterAdmin struct {
	nodes map[string]*redis.Client // by node id
	addr  map[string]string        // by node id
	ids   []string
}

func newClusterAdmin(t *testing.T) *clusterAdmin {
	t.Helper()
	cl := &clusterAdmin{nodes: map[string]*redis.Client{}, addr: map[string]string{}}
	for _, addr := range redistest.ClusterAddrs(t) {
		c := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = c.Close() })
		id, err := c.Do(ctx, "CLUSTER", "MYID").Text()
		require.NoError(t, err)
		cl.nodes[id], cl.addr[id] = c, addr
		cl.ids = append(cl.ids, id)
	}
	require.GreaterOrEqual(t, len(cl.ids), 2, "a slot needs somewhere to move")
	return cl
}

// owner returns the id of the master that every node says owns slot.
func (cl *clusterAdmin) owner(t *testing.T, slot int) string {
	t.Helper()
	var owner string
	for _, id := range cl.ids {
		shards, err := cl.nodes[id].ClusterShards(ctx).Result()
		require.NoError(t, err)
		var o string
		for _, s := range shards {
			for _, r := range s.Slots {
				if r.Start <= int64(slot) && int64(slot) <= r.End {
					for _, n := range s.Nodes {
						if n.Role == "master" {
							o = n.ID
						}
					}
				}
			}
		}
		require.NotEmpty(t, o, "slot %d is not served", slot)
		if owner == "" {
			owner = o
		}
		require.Equal(t, owner, o, "the nodes disagree on who owns slot %d", slot)
	}
	return owner
}

func (cl *clusterAdmin) other(id string) string {
	for _, x := range cl.ids {
		if x != id {
			return x
		}
	}
	return ""
}

// moveSlot migrates slot from one master to another the way redis-cli --cluster reshard does,
// under load: the slot opens, its keys move in batches at a steady pace, the slot is
// reassigned, and hold lets the load run on before the next move.
//
// (While the slot is open, a script whose keys exist only in part on a node, such as a lease
// taken for a value that is there, is refused with TRYAGAIN on both nodes until all of them
// have moved: a migration that stalls with the slot open stalls writes to its keys. redis-cli
// opens the slot and moves its keys at once.)
func (cl *clusterAdmin) moveSlot(t *testing.T, slot int, from, to string, hold func(step string)) {
	t.Helper()
	src, dst := cl.nodes[from], cl.nodes[to]
	require.NoError(t, dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", from).Err())
	require.NoError(t, src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", to).Err())
	host, port, ok := strings.Cut(cl.addr[to], ":")
	require.True(t, ok)
	moved := 0
	for {
		// Two keys per MIGRATE, as redis-cli moves a slot in batches (of 10 by default), 20 ms
		// apart: the keys of a user key (value, lease, fence) are split between the nodes
		// from one batch to the next, and a script on them gets TRYAGAIN until they are
		// together again, which the scripts' callers wait out within the Redis timeout.
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 2).Result()
		require.NoError(t, err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "REPLACE", "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		err = src.Do(ctx, args...).Err()
		if err != nil && !strings.Contains(err.Error(), "NOKEY") {
			require.NoError(t, err)
		}
		moved += len(keys)
		time.Sleep(20 * time.Millisecond) // a migration's pace, not a wait for a condition
	}
	// Assign the slot: the target first, then the source, then the others, as reshard does.
	require.NoError(t, dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to).Err())
	require.NoError(t, src.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to).Err())
	for _, id := range cl.ids {
		if id != from && id != to {
			require.NoError(t, cl.nodes[id].Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to).Err())
		}
	}
	t.Logf("slot %d: %d keys moved from %s to %s", slot, moved, cl.addr[from], cl.addr[to])
	hold("the slot was reassigned")
}

// requireStable checks that no node has slot importing or migrating.
func (cl *clusterAdmin) requireStable(t *testing.T, slot int) {
	t.Helper()
	for _, id := range cl.ids {
		nodes, err := cl.nodes[id].ClusterNodes(ctx).Result()
		require.NoError(t, err)
		require.NotContains(t, nodes, fmt.Sprintf("[%d-", slot), "slot %d is still open on %s", slot, cl.addr[id])
		info, err := cl.nodes[id].ClusterInfo(ctx).Result()
		require.NoError(t, err)
		require.Contains(t, info, "cluster_state:ok")
	}
}

// settle puts slot back on its home master after a test that failed halfway: redis-cli closes
// a half-done migration (either way), and the slot is moved home if it is elsewhere.
func (cl *clusterAdmin) settle(t *testing.T, slot int, home string) {
	out, err := exec.Command("redis-cli", "--cluster", "fix", cl.addr[home], "--cluster-yes").CombinedOutput()
	if err != nil {
		t.Logf("redis-cli --cluster fix: %v\n%s", err, out)
		return
	}
	if owner := cl.owner(t, slot); owner != home {
		cl.moveSlot(t, slot, owner, home, func(string) {})
	}
}

// tail returns the 99th percentile and the maximum of ds, which it sorts.
func tail(ds []time.Duration) (p99, most time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)*99/100], ds[len(ds)-1]
}
