package stampede_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
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
	"github.com/stampede-cache/stampede/internal/scripts"
)

// The least-privilege Redis user of docs/operations.md ("Least-privilege Redis user"): these
// tests read the ACL SETUSER line of the doc, give a Redis user of their own its commands on
// their own namespace's keys and channel, and run the cache as that user. Redis's ACL LOG, which
// records every command it refuses (inside scripts too), tells whether the cache needed more.

// aclDocPath is the doc whose ACL line the tests check.
const aclDocPath = "docs/operations.md"

// aclDocCommands returns the commands the doc's ACL SETUSER line allows, and checks that its
// other rules are those the tests give their users: no command but these, the namespace's keys
// N:{*, its channel N:events.
func aclDocCommands(t *testing.T) []string {
	t.Helper()
	doc, err := os.ReadFile(aclDocPath)
	require.NoError(t, err)
	for line := range strings.Lines(string(doc)) {
		fields := strings.Fields(line)
		if len(fields) < 3 || fields[0] != "ACL" || fields[1] != "SETUSER" {
			continue
		}
		var commands []string
		for _, f := range fields[3:] {
			if c, ok := strings.CutPrefix(f, "+"); ok {
				commands = append(commands, c)
			}
		}
		for _, rule := range []string{"-@all", "resetkeys", "resetchannels", "~myapp:{*", "&myapp:events", "&myapp:{~*}:ev"} {
			require.Contains(t, fields, rule, "the ACL line of %s", aclDocPath)
		}
		require.NotEmpty(t, commands, "the ACL line of %s", aclDocPath)
		return commands
	}
	t.Fatalf("no ACL SETUSER line in %s", aclDocPath)
	return nil
}

// globQuote escapes what Redis's glob patterns (ACL key and channel patterns) give a meaning.
func globQuote(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// aclUser is a Redis user allowed only some commands on one namespace's keys and channel, and
// the caches that run as it.
type aclUser struct {
	admin *redis.Client // of the server the user is on, with every permission
	addr  string
	name  string
	pass  string
	ns    string

	logs *captured // what the caches logged

	mu        sync.Mutex
	redisErrs []string // what the caches reported to Hooks.OnRedisError
	caches    []*stampede.Cache[string]
}

// newACLUser creates the user on admin's server, allowed commands on namespace ns, and deletes
// it when the test ends.
func newACLUser(t *testing.T, admin *redis.Client, ns string, commands []string) *aclUser {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	u := &aclUser{
		admin: admin, addr: admin.Options().Addr,
		name: "stampede-acl-test-" + hex.EncodeToString(b[:]), pass: hex.EncodeToString(b[:]),
		ns: ns, logs: &captured{},
	}
	args := []any{"ACL", "SETUSER", u.name, "reset", "on", ">" + u.pass, "resetkeys", "resetchannels", "-@all",
		"~" + globQuote(ns) + ":{*", "&" + globQuote(scripts.Channel(ns)),
		"&" + globQuote(ns) + ":{~*}:ev"}
	for _, c := range commands {
		args = append(args, "+"+c)
	}
	require.NoError(t, admin.Do(ctx, args...).Err())
	// Registered first, so it runs last: after the caches and clients closed.
	t.Cleanup(func() {
		_ = admin.Do(context.Background(), "ACL", "DELUSER", u.name).Err()
		var keys []string
		iter := admin.Scan(context.Background(), 0, globQuote(ns)+":*", 1000).Iterator()
		for iter.Next(context.Background()) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			_ = admin.Unlink(context.Background(), keys...).Err()
		}
	})
	return u
}

// cache starts an instance of a service as the user: its own client, logging to u.logs.
func (u *aclUser) cache(t *testing.T, opts ...stampede.Option) *stampede.Cache[string] {
	t.Helper()
	client := redis.NewClient(&redis.Options{
		Addr: u.addr, Username: u.name, Password: u.pass, ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = client.Close() })
	hooks := stampede.Hooks{OnRedisError: func(op, key string, err error) {
		u.mu.Lock()
		u.redisErrs = append(u.redisErrs, fmt.Sprintf("%s %q: %v", op, key, err))
		u.mu.Unlock()
	}}
	opts = append([]stampede.Option{
		// These tests are about permissions: a slow moment of a busy machine (-race, the other
		// subtests) must not time a call out.
		stampede.WithRedisTimeout(2 * time.Second),
		stampede.WithNamespace(u.ns),
		stampede.WithLogger(slog.New(&captureHandler{store: u.logs})),
		stampede.WithHooks(hooks),
	}, opts...)
	c, err := stampede.New[string](client, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	u.mu.Lock()
	u.caches = append(u.caches, c)
	u.mu.Unlock()
	return c
}

// refused returns what Redis refused the user, from its ACL LOG: "object (context, reason)".
// (It may run in require.Eventually's goroutine: it fails the test without stopping it.)
func (u *aclUser) refused(t *testing.T) []string {
	t.Helper()
	entries, err := u.admin.ACLLog(ctx, 256).Result()
	if err != nil {
		t.Errorf("ACL LOG: %v", err)
		return nil
	}
	var out []string
	for _, e := range entries {
		if e.Username == u.name {
			out = append(out, fmt.Sprintf("%s (%s, %s)", e.Object, e.Context, e.Reason))
		}
	}
	return out
}

// requireNothingRefused checks that Redis refused the user nothing, and that the caches neither
// logged a refusal nor reported a failed Redis call.
func (u *aclUser) requireNothingRefused(t *testing.T) {
	t.Helper()
	require.Empty(t, u.refused(t), "ACL LOG entries of %s", u.name)
	u.logs.mu.Lock()
	for _, r := range u.logs.records {
		// NOPERM ... no permissions to run ..., or from a script (Redis 7.0): ... can't run
		// this command ...
		lower := strings.ToLower(r)
		require.False(t, strings.Contains(lower, "noperm") || strings.Contains(lower, "permission") ||
			strings.Contains(lower, "can't run"), "logged: %s", r)
	}
	u.logs.mu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	require.Empty(t, u.redisErrs, "Redis errors reported to the hooks")
	for i, c := range u.caches {
		require.Zero(t, c.Stats().RedisErrors, "RedisErrors of cache %d", i)
	}
}

// lastCommands returns the last command of each connection of the user (CLIENT LIST's cmd).
// Like refused, it may run in require.Eventually's goroutine.
func (u *aclUser) lastCommands(t *testing.T) []string {
	t.Helper()
	list, err := u.admin.ClientList(ctx).Result()
	if err != nil {
		t.Errorf("CLIENT LIST: %v", err)
		return nil
	}
	var cmds []string
	for line := range strings.Lines(list) {
		fields := strings.Fields(line)
		if !slices.Contains(fields, "user="+u.name) {
			continue
		}
		for _, f := range fields {
			if c, ok := strings.CutPrefix(f, "cmd="); ok {
				cmds = append(cmds, c)
			}
		}
	}
	return cmds
}

// noLoad is a loader for reads that must be answered from the cache.
func noLoad(t *testing.T) stampede.Loader[string] {
	return func(_ context.Context, key string) (string, error) {
		t.Errorf("unexpected load of %q", key)
		return "", errors.New("unexpected load")
	}
}

// TestIntegrationACLLeastPrivilege runs the cache as a Redis user with only the doc's commands
// on only its namespace's keys and channel: nothing is refused, and without any one of the
// commands Redis refuses the cache that command.
func TestIntegrationACLLeastPrivilege(t *testing.T) {
	commands := aclDocCommands(t)
	admin := redistest.Real(t)

	t.Run("the doc's commands suffice", func(t *testing.T) {
		t.Parallel()
		u := newACLUser(t, admin, redistest.Namespace(t), commands)
		aclMainPaths(t, u)
	})

	t.Run("each command is needed", func(t *testing.T) {
		t.Parallel()
		// WAIT goes only to a primary with replicas: "writes wait for a replica" checks it.
		var users []*aclUser
		var missing []string
		for _, c := range commands {
			if c == "wait" {
				continue
			}
			missing = append(missing, c)
			users = append(users, newACLUser(t, admin, redistest.Namespace(t),
				slices.DeleteFunc(slices.Clone(commands), func(x string) bool { return x == c })))
		}
		// The users run at once: the health check of a subscription (PING) waits for a second
		// of silence.
		instances := make([][2]*stampede.Cache[string], len(users))
		for i, u := range users {
			opts := []stampede.Option{stampede.WithLeaseTTL(200 * time.Millisecond), stampede.WithReplicas(1)}
			instances[i] = [2]*stampede.Cache[string]{u.cache(t, opts...), u.cache(t, opts...)}
		}
		var wg sync.WaitGroup
		for i := range users {
			wg.Go(func() { aclTryPaths(instances[i][0], instances[i][1]) })
		}
		wg.Wait()
		for i, u := range users {
			defer func() { t.Logf("without %s, refused: %q", missing[i], u.refused(t)) }()
			require.Eventually(t, func() bool {
				return slices.ContainsFunc(u.refused(t), func(r string) bool { return strings.HasPrefix(r, missing[i]+" ") })
			}, 3*time.Second, 20*time.Millisecond, "without %q, Redis refuses the cache %q", missing[i], missing[i])
		}
	})

	t.Run("writes wait for a replica", func(t *testing.T) {
		t.Parallel()
		aclWait(t, commands)
	})
}

// aclMainPaths runs the main paths of two instances as u, checking values, and then that u was
// refused nothing.
func aclMainPaths(t *testing.T, u *aclUser) {
	a, b := u.cache(t), u.cache(t)
	require.True(t, stampede.Subscribed(a) && stampede.Subscribed(b), "SUBSCRIBE allowed")

	// A miss loads; the other instance reads the value from Redis, and each from its L1.
	src := newSource("v1")
	v, err := a.Get(ctx, "user:1", src.load)
	require.NoError(t, err)
	require.Equal(t, "v1", v)
	v, err = b.Get(ctx, "user:1", noLoad(t))
	require.NoError(t, err)
	require.Equal(t, "v1", v)
	v, err = a.Get(ctx, "user:1", noLoad(t))
	require.NoError(t, err)
	require.Equal(t, "v1", v)
	require.Equal(t, uint64(1), b.Stats().L2Hits, "b read Redis")
	require.Equal(t, uint64(1), a.Stats().L1Hits, "a read its L1")

	// The Singleflight strategy asks for the fence only.
	v, err = u.cache(t, stampede.WithStrategy(stampede.Singleflight)).Get(ctx, "user:sf", src.load)
	require.NoError(t, err)
	require.Equal(t, "v1", v)

	// Each write reaches the other instance, whose L1 its message evicts.
	eventually := func(want string, load stampede.Loader[string]) {
		t.Helper()
		var v string
		var err error
		require.Eventually(t, func() bool {
			v, err = b.Get(ctx, "user:1", load)
			return err == nil && v == want
		}, 2*time.Second, 5*time.Millisecond, "want %q, got %q, %v", want, v, err)
	}
	require.NoError(t, a.Set(ctx, "user:1", "v2"))
	eventually("v2", noLoad(t))

	src.value.Store("v3")
	require.NoError(t, a.Invalidate(ctx, "user:1")) // stale: served while one refresh loads v3
	eventually("v3", src.load)

	src.value.Store("v4")
	require.NoError(t, a.Delete(ctx, "user:1"))
	eventually("v4", src.load)

	src.value.Store("v5")
	v, err = a.Refresh(ctx, "user:1", src.load)
	require.NoError(t, err)
	require.Equal(t, "v5", v)
	eventually("v5", noLoad(t))

	// The lease: b waits for a's load, and a's fill tells it, with the value.
	watch := u.admin.Subscribe(ctx, scripts.Channel(u.ns))
	t.Cleanup(func() { _ = watch.Close() })
	_, err = watch.Receive(ctx) // the subscription's confirmation
	require.NoError(t, err)
	slow := newSource("slow")
	started, release := slow.hold()
	type reply struct {
		v   string
		err error
	}
	replies := make(chan reply, 2)
	go func() { v, err := a.Get(ctx, "user:2", slow.load); replies <- reply{v, err} }()
	<-started
	go func() { v, err := b.Get(ctx, "user:2", slow.load); replies <- reply{v, err} }()
	require.Eventually(t, func() bool { return b.Stats().LeaseWaits == 1 }, 2*time.Second, time.Millisecond,
		"b waits for a's lease")
	release()
	for range 2 {
		r := <-replies
		require.NoError(t, r.err)
		require.Equal(t, "slow", r.v)
	}
	require.Equal(t, int64(1), slow.calls.Load(), "one load for both instances")
	for {
		msg, err := watch.ReceiveTimeout(ctx, 2*time.Second)
		require.NoError(t, err, "the fill's message")
		m, ok := msg.(*redis.Message)
		require.True(t, ok, "got %T", msg)
		parsed, err := scripts.ParseMessage(m.Payload)
		require.NoError(t, err)
		if parsed.Key == "user:2" && parsed.Kind == scripts.Filled {
			require.NotEmpty(t, parsed.Value, "the fill sends its waiters the value")
			break
		}
	}
	require.NoError(t, watch.Close())

	// Replicas: a fill and a Set copy the value to each replica (EVAL in a pipeline), a read
	// reads one (GET and PTTL), a read that misses its replica copies the primary to it
	// (EVALSHA), and a Delete drops them (DEL).
	const n = 3
	r1, r2 := u.cache(t, stampede.WithReplicas(n)), u.cache(t, stampede.WithReplicas(n))
	hot := newSource("hot")
	v, err = r1.Get(ctx, "hot", hot.load)
	require.NoError(t, err)
	require.Equal(t, "hot", v)
	replicas := scripts.ReplicaKeys(u.ns, "hot", n)
	require.Equal(t, int64(n), u.admin.Exists(ctx, replicas...).Val(), "the fill wrote every replica")
	v, err = r2.Get(ctx, "hot", noLoad(t))
	require.NoError(t, err)
	require.Equal(t, "hot", v)
	require.Equal(t, uint64(1), r2.Stats().ReplicaHits, "r2 read a replica")

	s1, s2 := u.cache(t, stampede.WithReplicas(1)), u.cache(t, stampede.WithReplicas(1))
	require.NoError(t, s1.Set(ctx, "hot:1", "one"))
	one := scripts.ReplicaKeys(u.ns, "hot:1", 1)[0]
	require.NoError(t, u.admin.Del(ctx, one).Err())
	v, err = s2.Get(ctx, "hot:1", noLoad(t))
	require.NoError(t, err)
	require.Equal(t, "one", v)
	require.Eventually(t, func() bool { return u.admin.Exists(ctx, one).Val() == 1 }, 2*time.Second, time.Millisecond,
		"a read that missed its replica copies the primary there")

	require.NoError(t, r1.Delete(ctx, "hot"))
	require.Zero(t, u.admin.Exists(ctx, replicas...).Val(), "Delete dropped every replica")

	// The batch calls: GetMany reads with MGET and leases, loads and fills with the batch
	// scripts; SetMany, InvalidateMany and DeleteMany write with theirs.
	batch := func(_ context.Context, keys []string) (map[string]string, error) {
		m := make(map[string]string, len(keys))
		for _, k := range keys {
			m[k] = "batch:" + k
		}
		return m, nil
	}
	got, err := a.GetMany(ctx, []string{"m:1", "m:2", "user:1"}, batch)
	require.NoError(t, err)
	require.Equal(t, "batch:m:2", got["m:2"])
	got, err = b.GetMany(ctx, []string{"m:1", "m:2"}, batch)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.NoError(t, a.SetMany(ctx, map[string]string{"m:1": "one", "m:3": "three"}))
	require.NoError(t, a.InvalidateMany(ctx, []string{"m:1", "m:3"}))
	require.NoError(t, a.DeleteMany(ctx, []string{"m:1", "m:2", "m:3"}))

	// The subscription's health check: a PING after a second of silence.
	require.Eventually(t, func() bool { return slices.Contains(u.lastCommands(t), "ping") }, 3*time.Second,
		10*time.Millisecond, "no PING on the user's connections")
	for _, c := range []*stampede.Cache[string]{a, b, r1, r2} {
		require.True(t, stampede.Subscribed(c), "still subscribed after the PING")
	}
	u.requireNothingRefused(t)
}

// aclTryPaths runs the main paths once each, as aclMainPaths does, without checking anything:
// a command missing makes some of them fail. The caches serve replicated reads (WithReplicas).
func aclTryPaths(a, b *stampede.Cache[string]) {
	load := func(context.Context, string) (string, error) { return "v", nil }
	do := func(f func(context.Context)) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		f(ctx)
	}
	do(func(ctx context.Context) { _, _ = a.Get(ctx, "k", load) })
	do(func(ctx context.Context) { _, _ = b.Get(ctx, "k", load) })
	do(func(ctx context.Context) { _ = a.Set(ctx, "k", "v") })
	do(func(ctx context.Context) { _ = a.Invalidate(ctx, "k") })
	do(func(ctx context.Context) { _, _ = b.Get(ctx, "k", load) })
	do(func(ctx context.Context) { _ = a.Delete(ctx, "k") })
	do(func(ctx context.Context) { _, _ = a.Refresh(ctx, "k", load) })
	do(func(ctx context.Context) { _, _ = b.Get(ctx, "k", load) })
	do(func(ctx context.Context) { _ = a.InvalidateAll(ctx) }) // publishes at once, as waiters' notifications do
	batch := func(_ context.Context, keys []string) (map[string]string, error) {
		return map[string]string{keys[0]: "v"}, nil
	}
	do(func(ctx context.Context) { _, _ = a.GetMany(ctx, []string{"m1", "m2"}, batch) })
	do(func(ctx context.Context) { _ = a.SetMany(ctx, map[string]string{"m1": "v"}) })
	do(func(ctx context.Context) { _ = a.InvalidateMany(ctx, []string{"m1"}) })
	do(func(ctx context.Context) { _ = a.DeleteMany(ctx, []string{"m1"}) })
}

// aclWait runs writes as a user with the doc's commands on a primary with a replica of its own,
// so that they wait for the replica (WAIT), and checks that without WAIT they fail.
func aclWait(t *testing.T, commands []string) {
	primary, replica := startRedis(t), startRedis(t)
	p := redis.NewClient(&redis.Options{Addr: primary.addr()})
	t.Cleanup(func() { _ = p.Close() })
	r := redis.NewClient(&redis.Options{Addr: replica.addr()})
	t.Cleanup(func() { _ = r.Close() })
	require.NoError(t, p.ConfigSet(ctx, "repl-diskless-sync-delay", "0").Err())
	require.NoError(t, r.ReplicaOf(ctx, "127.0.0.1", strconv.Itoa(primary.port)).Err())
	require.Eventually(t, func() bool {
		return strings.Contains(r.Info(ctx, "replication").Val(), "master_link_status:up")
	}, 5*time.Second, 5*time.Millisecond, "the replica syncs")

	ns := redistest.Namespace(t)
	u := newACLUser(t, p, ns, commands)
	c := u.cache(t) // WithWriteReplicas(1), the default
	require.Eventually(t, func() bool { return stampede.WriteReplicas(c) == 1 }, 2*time.Second, time.Millisecond,
		"the topology watcher reads INFO and finds the replica")
	require.NoError(t, c.Set(ctx, "k", "v"))
	require.NoError(t, c.Invalidate(ctx, "k"))
	v, err := c.Refresh(ctx, "k", func(context.Context, string) (string, error) { return "w", nil })
	require.NoError(t, err)
	require.Equal(t, "w", v)
	require.NoError(t, c.Delete(ctx, "k"))
	require.NoError(t, c.SetMany(ctx, map[string]string{"m1": "v", "m2": "w"}))
	require.NoError(t, c.InvalidateMany(ctx, []string{"m1", "m2"}))
	require.NoError(t, c.DeleteMany(ctx, []string{"m1", "m2"}))
	require.Contains(t, u.lastCommands(t), "wait")
	require.Zero(t, r.Exists(ctx, scripts.ValueKey(ns, "k")).Val(), "the replica has the Delete")
	u.requireNothingRefused(t)

	// Without WAIT, every write fails: its script ran, but it cannot be confirmed.
	without := newACLUser(t, p, redistest.Namespace(t),
		slices.DeleteFunc(slices.Clone(commands), func(x string) bool { return x == "wait" }))
	d := without.cache(t)
	require.Eventually(t, func() bool { return stampede.WriteReplicas(d) == 1 }, 2*time.Second, time.Millisecond)
	err = d.Set(ctx, "k", "v")
	require.ErrorContains(t, err, "NOPERM")
	require.True(t, slices.ContainsFunc(without.refused(t), func(r string) bool { return strings.HasPrefix(r, "wait ") }),
		"refused: %q", without.refused(t))
}
