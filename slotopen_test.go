package stampede_test

import (
	"context"
	"fmt"
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

// TestClusterSlotLeftOpen opens the slot of a few dozen user keys (IMPORTING on one master,
// MIGRATING on its owner) and leaves it open, with the keys of each user key in one of six
// states: all on the source, with and without a value; split between the nodes, either way; all
// moved, with and without a value. None has a lease. Redis refuses a script on several of those
// keys with TRYAGAIN for as long as the slot stays open; here that is many times the caches'
// Redis timeout. Set, Delete, Invalidate and Refresh each succeed in each state, and leave the
// value, the fence and the lease as they would with the slot closed; instances that held the
// value in their L1 drop it. A load that began before a Delete made while the slot was open
// cannot write what it read once the slot is closed. The slot is closed at the end (moved to
// the other master and back), and if the test fails halfway.
func TestClusterSlotLeftOpen(t *testing.T) {
	const redisTimeout = 100 * time.Millisecond
	cl := newClusterAdmin(t)
	ns := redistest.Namespace(t)
	caches := clusterFleet(t, ns, 3, stampede.WithRedisTimeout(redisTimeout), stampede.WithL1(1000, time.Minute),
		stampede.WithLeaseTTL(500*time.Millisecond)) // a Refresh whose fill is refused leaves its lease to expire
	writer, holder, loader := caches[0], caches[1], caches[2] // holder keeps values in its L1
	rc := redistest.Cluster(t)

	states := []string{"source", "source, no value", "value moved", "fence moved", "moved", "moved, no value"}
	ops := []string{"set", "delete", "invalidate", "refresh"}
	// The user keys share a slot: a '}' in a key ends its Redis keys' hash tag, {open:<ns>}.
	tag := "open:" + ns
	fenced := tag + "}fenced" // the key of the load that began before a Delete
	slot := keySlot(scripts.ValueKey(ns, fenced))
	type target struct{ key, state, op string }
	var targets []target
	for i, state := range states {
		for j, op := range ops {
			tg := target{fmt.Sprint(tag, "}", i*len(ops)+j), state, op}
			require.Equal(t, slot, keySlot(scripts.ValueKey(ns, tg.key)))
			targets = append(targets, tg)
		}
	}
	home := cl.owner(t, slot)
	away := cl.other(home)
	src, dst := cl.nodes[home], cl.nodes[away]
	host, port, _ := strings.Cut(cl.addr[away], ":")
	migrate := func(key string) {
		t.Helper()
		require.NoError(t, src.Do(ctx, "MIGRATE", host, port, key, 0, 5000, "REPLACE").Err())
	}
	var db sync.Map // the source the loaders read: key to value
	for _, tg := range targets {
		db.Store(tg.key, "db-"+tg.key)
	}
	load := func(_ context.Context, key string) (string, error) {
		v, _ := db.Load(key)
		return v.(string), nil
	}

	for _, tg := range targets {
		require.NoError(t, writer.Set(ctx, tg.key, "old-"+tg.key))
		if strings.HasSuffix(tg.state, "no value") {
			require.NoError(t, writer.Delete(ctx, tg.key))
		} else {
			v, err := holder.Get(ctx, tg.key, load)
			require.NoError(t, err)
			require.Equal(t, "old-"+tg.key, v)
			require.True(t, stampede.InL1(holder, tg.key))
		}
	}

	// Two keys written by the scripts with an Ack once they have moved: one with a value (its
	// script runs on the target after ASK), one without (single-key scripts, after ASK too).
	ackedSet, ackedDelete := tag+"}acked-set", tag+"}acked-delete"
	require.NoError(t, writer.Set(ctx, ackedSet, "old"))
	require.NoError(t, writer.Set(ctx, ackedDelete, "old"))
	require.NoError(t, writer.Delete(ctx, ackedDelete))

	// A load that takes the key's lease and fence before the slot opens, and is held until it
	// has closed again.
	require.NoError(t, writer.Delete(ctx, fenced))
	source := newSource("old")
	started, held := source.hold()
	release := sync.OnceFunc(held)
	t.Cleanup(release)
	loaded := make(chan string, 1)
	go func() {
		v, err := loader.Get(ctx, fenced, source.load)
		if err != nil {
			v = err.Error()
		}
		loaded <- v
	}()
	<-started

	// Open the slot, and leave it open until the end.
	require.NoError(t, dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", home).Err())
	require.NoError(t, src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", away).Err())
	opened := time.Now()
	closed := false
	closeSlot := func() {
		if closed {
			return
		}
		closed = true
		finishMigration(t, cl, slot, home, away)
		cl.moveSlot(t, slot, away, home, func(string) {})
		cl.requireStable(t, slot)
	}
	t.Cleanup(closeSlot)
	for _, tg := range targets {
		k := scripts.KeysFor(ns, tg.key)
		switch tg.state {
		case "value moved":
			migrate(k.Value)
		case "fence moved":
			migrate(k.Gen)
		case "moved", "moved, no value":
			migrate(k.Value) // NOKEY without a value: it is not there to move
			migrate(k.Gen)
		}
	}
	migrate(scripts.KeysFor(ns, fenced).Gen) // its lease stays on the source
	for _, key := range []string{ackedSet, ackedDelete} {
		migrate(scripts.KeysFor(ns, key).Value)
		migrate(scripts.KeysFor(ns, key).Gen)
	}
	t.Logf("slot %d open: MIGRATING on %s, IMPORTING on %s", slot, cl.addr[home], cl.addr[away])

	// Redis refuses the write's script (on the value and the fence, and the lease for a
	// Refresh) in every state but those where all its keys are on one node.
	refusals := 0
	probeSrc, probeDst := noRetries(t, cl.addr[home]), noRetries(t, cl.addr[away])
	for _, tg := range targets {
		k := scripts.KeysFor(ns, tg.key)
		keys := []string{k.Value, k.Gen}
		if tg.op == "refresh" {
			keys = append(keys, k.Lock)
		}
		together := (tg.state == "source" || tg.state == "moved") && tg.op != "refresh"
		require.Equal(t, !together, refused(t, probeSrc, probeDst, keys), "%s, %s", tg.state, tg.op)
		if !together {
			refusals++
		}
	}
	// Let the slot stay open for longer than the Redis timeout before the writes begin.
	time.Sleep(2 * redisTimeout)

	envelopeOf := func(key string) (envelope.Header, string, bool) {
		t.Helper()
		raw, err := rc.Get(ctx, scripts.ValueKey(ns, key)).Bytes()
		if err == redis.Nil {
			return envelope.Header{}, "", false
		}
		require.NoError(t, err)
		h, payload, err := envelope.Parse(raw)
		require.NoError(t, err)
		return h, string(payload), true
	}
	fence := func(key string) uint64 {
		t.Helper()
		g, err := rc.Get(ctx, scripts.KeysFor(ns, key).Gen).Uint64()
		require.NoError(t, err)
		return g
	}
	var took []time.Duration
	slowest := map[string]time.Duration{}
	errs := map[string]int{}
	for _, tg := range targets {
		before := fence(tg.key)
		_, _, had := envelopeOf(tg.key)
		start := time.Now()
		var err error
		switch tg.op {
		case "set":
			err = writer.Set(ctx, tg.key, "set-"+tg.key)
		case "delete":
			err = writer.Delete(ctx, tg.key)
		case "invalidate":
			err = writer.Invalidate(ctx, tg.key)
		case "refresh":
			db.Store(tg.key, "refreshed-"+tg.key)
			var v string
			if v, err = writer.Refresh(ctx, tg.key, load); err == nil {
				require.Equal(t, "refreshed-"+tg.key, v)
			}
		}
		took = append(took, time.Since(start))
		slowest[tg.op] = max(slowest[tg.op], took[len(took)-1])
		if err != nil {
			errs[tg.op+": "+shortErr(err)]++
			t.Errorf("%s, %s: %v", tg.state, tg.op, err)
			continue
		}
		what := tg.state + ", " + tg.op
		gen := fence(tg.key)
		require.Greater(t, gen, before, "%s: the write advanced the fence", what)
		h, payload, has := envelopeOf(tg.key)
		switch {
		case tg.op == "set":
			require.True(t, has, what)
			require.Equal(t, strconv.Quote("set-"+tg.key), payload, what)
			require.Equal(t, gen, h.Gen, what)
			require.False(t, h.Invalidated(), what)
		case tg.op == "delete" || !had:
			require.False(t, has, "%s: %q", what, payload)
		default: // invalidate, refresh of a value: still there, stale, at the write's generation
			require.True(t, has, what)
			require.Equal(t, strconv.Quote("old-"+tg.key), payload, what)
			require.True(t, h.Invalidated(), what)
			require.Equal(t, gen, h.Gen, what)
		}
		if tg.op == "refresh" {
			lease, err := rc.Get(ctx, scripts.KeysFor(ns, tg.key).Lock).Result()
			require.NoError(t, err, "%s: the Refresh holds the lease", what)
			require.NotEmpty(t, lease)
		}
		if had { // the write's message reached the instance that held the value in its L1
			require.Eventually(t, func() bool { return !stampede.InL1(holder, tg.key) }, time.Second, time.Millisecond, what)
		}
		if tg.op == "set" { // and a read there gets the new value
			v, err := holder.Get(ctx, tg.key, load)
			require.NoError(t, err, what)
			require.Equal(t, "set-"+tg.key, v, what)
		}
	}
	// A write acknowledged by replicas waits for them on the connection of the node that took
	// it: here, after ASK, the target's. (The cluster has no replica: the writes are taken, and
	// reported unconfirmed.)
	ack := scripts.Ack{Replicas: 1, Timeout: 5 * time.Millisecond}
	actx, cancel := context.WithTimeout(ctx, time.Second) // as the caches' Redis timeout bounds their writes
	defer cancel()
	before := fence(ackedSet)
	now := time.Now().UnixNano()
	env := append(envelope.Append(nil, envelope.Header{WrittenAt: now, FreshUntil: now + int64(time.Minute)}), `"acked"`...)
	_, err := scripts.Set(actx, rc, ack, scripts.KeysFor(ns, ackedSet), env, time.Minute, time.Hour, scripts.Channel(ns), ackedSet)
	require.ErrorIs(t, err, scripts.ErrUnconfirmed)
	require.Greater(t, fence(ackedSet), before)
	h, payload, _ := envelopeOf(ackedSet)
	require.Equal(t, `"acked"`, payload)
	require.Equal(t, fence(ackedSet), h.Gen)
	before = fence(ackedDelete)
	_, err = scripts.Delete(actx, rc, ack, scripts.KeysFor(ns, ackedDelete), time.Hour, scripts.Channel(ns), ackedDelete)
	require.ErrorIs(t, err, scripts.ErrUnconfirmed)
	require.Greater(t, fence(ackedDelete), before)
	_, _, has := envelopeOf(ackedDelete)
	require.False(t, has)

	// The load that began before the slot opened is fenced out by a Delete made now.
	source.value.Store("new")
	require.NoError(t, writer.Delete(ctx, fenced))
	open := time.Since(opened)
	slices.Sort(took)
	t.Logf("slot open %v (Redis timeout %v); %d writes (%d of whose scripts Redis refuses), failed: %v; "+
		"write latency p50 %v, max by operation %v; Redis errors of the writer (the fills of Refreshes, refused while the slot is open): %d",
		open, redisTimeout, len(took), refusals, errs, took[len(took)/2], slowest, writer.Stats().RedisErrors)
	require.Greater(t, open, 3*redisTimeout)

	closeSlot()
	release()
	require.Equal(t, "old", <-loaded, "the caller gets what its load returned")
	require.EqualValues(t, 1, loader.Stats().FencedLoads, "its fill was refused")
	_, _, has = envelopeOf(fenced)
	require.False(t, has, "the load did not write what it read before the Delete")
	v, err := holder.Get(ctx, fenced, source.load)
	require.NoError(t, err)
	require.Equal(t, "new", v)
	// Once the slot is closed, a stale value's next reader refreshes it from the source.
	for _, tg := range targets {
		if tg.op != "refresh" || strings.HasSuffix(tg.state, "no value") {
			continue
		}
		require.Eventually(t, func() bool {
			v, err := holder.Get(ctx, tg.key, load)
			return err == nil && v == "refreshed-"+tg.key
		}, 2*time.Second, 10*time.Millisecond, tg.state)
	}
}

// finishMigration moves the keys of an open slot still on from to to, and assigns the slot to
// to, as redis-cli --cluster reshard ends a migration.
func finishMigration(t *testing.T, cl *clusterAdmin, slot int, from, to string) {
	t.Helper()
	src := cl.nodes[from]
	host, port, _ := strings.Cut(cl.addr[to], ":")
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, slot, 10).Result()
		require.NoError(t, err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "REPLACE", "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		require.NoError(t, src.Do(ctx, args...).Err())
	}
	nodes := []string{to, from}
	for _, id := range cl.ids {
		if id != to && id != from {
			nodes = append(nodes, id)
		}
	}
	for _, id := range nodes {
		require.NoError(t, cl.nodes[id].Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", to).Err())
	}
}

// noRetries returns a client of the node at addr that does not retry TRYAGAIN.
func noRetries(t *testing.T, addr string) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// refused reports whether Redis refuses a script on keys of a slot migrating from src to dst:
// src answers ASK when it lacks one of them, and dst, after ASKING, TRYAGAIN when it lacks one.
func refused(t *testing.T, src, dst *redis.Client, keys []string) bool {
	t.Helper()
	err := src.Eval(ctx, "return 1", keys).Err()
	if err != nil && strings.HasPrefix(err.Error(), "ASK ") {
		var cmd *redis.Cmd
		_, _ = dst.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Do(ctx, "ASKING")
			cmd = p.Eval(ctx, "return 1", keys)
			return nil
		})
		err = cmd.Err()
	}
	if err != nil && strings.HasPrefix(err.Error(), "TRYAGAIN") {
		return true
	}
	require.NoError(t, err)
	return false
}
