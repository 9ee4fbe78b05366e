package stampede_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/faultproxy"
	"github.com/stampede-cache/stampede/internal/redistest"
	"github.com/stampede-cache/stampede/internal/scripts"
)

// The fault tests put a fault proxy (internal/faultproxy) between the caches and the real Redis
// in STAMPEDE_REDIS_ADDR, or run a redis-server of their own, and break things under load. Each
// is bounded in time and logs what it measured.

func faultKeys(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprint("key-", i)
	}
	return keys
}

// faultSlack is what a latency bound allows for scheduling on a small, busy machine.
func faultSlack() time.Duration {
	if raceEnabled {
		return 300 * time.Millisecond
	}
	return 100 * time.Millisecond
}

// TestFaultRedisBlackholed blackholes Redis (both ways: the proxy accepts connections and bytes
// and answers nothing, then delivers what it held, as TCP does when a partition heals) for 5 s
// under load from 8 instances, whose values expire during the outage. Callers keep getting
// answers, from the L1 or the loader, with latencies bounded by the Redis timeout plus the load
// time; a key never has two loads at once in one instance; once Redis is back every instance
// reads it again within a second, and every key is served again within a second; and Close
// leaves no goroutine behind.
func TestFaultRedisBlackholed(t *testing.T) {
	addr := redistest.Addr(t)
	ignore := goleak.IgnoreCurrent()
	const (
		n         = 8
		outage    = 5 * time.Second
		after     = 3 * time.Second
		loadTime  = 20 * time.Millisecond
		ttl       = time.Second
		staleTime = time.Second
	)
	p, err := faultproxy.New(addr)
	require.NoError(t, err)
	defer p.Close()
	ns := redistest.Namespace(t)
	f := faultFleet(t, p.Addr(), ns, n, stampede.WithTTL(ttl), stampede.WithStaleWhileRevalidate(staleTime))
	direct := faultFleet(t, addr, ns, 1) // writes the probe, past the proxy
	admin := redistest.Real(t)
	db := newFaultDB(loadTime)
	keys := faultKeys(16)
	stop := loadRun(f, db, keys, 4, 5*time.Millisecond)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	require.Eventually(t, func() bool { return len(db.loadsSince(time.Time{})) == len(keys) }, 5*time.Second, time.Millisecond)
	hits := func() uint64 { s := statsOf(f.caches); return s.L1Hits + s.L2Hits }
	warm := hits()
	require.Eventually(t, func() bool { return hits() >= warm+2000 }, 5*time.Second, time.Millisecond, "the fleet serves from its caches")
	before := statsOf(f.caches)

	start := time.Now()
	p.Blackhole(faultproxy.Both)
	time.Sleep(outage) // the outage, under load
	during := statsOf(f.caches)
	redisErrs := redisErrors(f.caches)
	restored := time.Now()
	p.Restore()

	// Recovery: each instance reads a value that only Redis has.
	require.NoError(t, direct.caches[0].Set(ctx, "probe", "from Redis"))
	back := make([]time.Duration, n)
	var wg sync.WaitGroup
	for i, c := range f.caches {
		wg.Go(func() {
			fromLoader := func(context.Context, string) (string, error) { return "from the loader", nil }
			for time.Since(restored) < after {
				v, err := c.Get(ctx, "probe", fromLoader, stampede.WithoutL1())
				if err == nil && v == "from Redis" {
					back[i] = time.Since(restored)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			back[i] = -1
		})
	}
	// The leases Redis holds just after the recovery.
	time.Sleep(100 * time.Millisecond)
	var leases []string
	locks, _, err := admin.Scan(ctx, 0, ns+":*:lock", 10_000).Result()
	require.NoError(t, err)
	for _, l := range locks {
		if left, _ := leaseLeft(ctx, admin, l); left > 0 {
			leases = append(leases, fmt.Sprintf("%s (%v left)", strings.TrimPrefix(l, ns+":"), left))
		}
	}
	wg.Wait()
	time.Sleep(time.Until(restored.Add(after))) // the load goes on after the outage
	samples := stop()
	stopped = true
	end := time.Now()
	final := statsOf(f.caches)

	warmup := summarizeReads(samples, time.Time{}, start)
	out := summarizeReads(samples, start, restored)
	rec := summarizeReads(samples, restored, end)
	sum := func(m map[string]int) (s int) {
		for _, v := range m {
			s += v
		}
		return s
	}
	loadsAfter := sum(db.loadsSince(restored.Add(time.Second)))
	loadsOut := sum(db.loadsSince(start)) - sum(db.loadsSince(restored))
	afterRate := float64(loadsAfter) / end.Sub(restored.Add(time.Second)).Seconds()
	slices.Sort(back)
	t.Logf("before: %v", warmup)
	t.Logf("outage (%v): %v; %d loads (%.0f/s), %d Redis errors; L1 hits %d, L2 hits %d, stale served %d",
		outage, out, loadsOut, float64(loadsOut)/outage.Seconds(), redisErrs,
		during.L1Hits-before.L1Hits, during.L2Hits-before.L2Hits, during.StaleServed-before.StaleServed)
	t.Logf("after (%v): %v; instances read Redis again after %v (first) %v (last); from 1 s after recovery on, %d loads (%.0f/s); L2 hits %d",
		end.Sub(restored).Round(time.Millisecond), rec, back[0], back[n-1], loadsAfter, afterRate, final.L2Hits-during.L2Hits)
	t.Logf("leases in Redis 100 ms after the recovery: %v", leases)

	require.Zero(t, warmup.errors+out.errors+rec.errors, "callers never see Redis's failure: %v",
		errors.Join(warmup.firstErr, out.firstErr, rec.firstErr))
	db.mu.Lock()
	require.Equal(t, 1, db.maxOnce, "at most one load of a key at a time per instance")
	db.mu.Unlock()
	bound := faultTimeout + loadTime + faultSlack()
	require.Less(t, out.p99, bound, "p99 during the outage")
	require.NotContains(t, back, time.Duration(-1), "an instance never read Redis again")
	require.Less(t, back[n-1], time.Second, "every instance reads Redis again within a second")
	// Without Redis each instance loads each key once per TTL; with it, the fleet does.
	require.Less(t, afterRate, float64(loadsOut)/outage.Seconds()/2, "loads fall back once Redis serves again")

	f.close()
	direct.close()
	require.NoError(t, p.Close())
	goleak.VerifyNone(t, ignore)

	// A lease call that timed out during the outage may still take the lease when Redis gets it
	// late; nobody loads under that lease, and its key waits for it to expire.
	require.Less(t, rec.p99, bound, "p99 after the outage; leases in Redis just after it: %v", leases)
	require.Less(t, rec.max, time.Second,
		"every key is served again within a second of the recovery; leases in Redis just after it: %v", leases)
}

// TestFaultRedisRestartedEmpty kills Redis (SIGKILL) under load from 8 instances and starts it
// again, empty, on the same port. Callers see no error, each instance empties its L1 when its
// subscription comes back (invalidations may have been lost), and each key is loaded once more,
// fleet-wide.
func TestFaultRedisRestartedEmpty(t *testing.T) {
	srv := startRedis(t)
	const n = 8
	f := faultFleet(t, srv.addr(), redistest.Namespace(t), n, stampede.WithTTL(time.Minute))
	db := newFaultDB(10 * time.Millisecond)
	keys := faultKeys(16)
	stop := loadRun(f, db, keys, 2, 5*time.Millisecond)
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	require.Eventually(t, func() bool { return len(db.loadsSince(time.Time{})) == len(keys) }, 5*time.Second, time.Millisecond)
	for _, k := range keys {
		require.Equal(t, 1, db.loadsSince(time.Time{})[k], "%s: one load fleet-wide", k)
	}
	for _, c := range f.caches {
		require.True(t, stampede.Subscribed(c))
	}

	killed := time.Now()
	srv.kill()
	srv.start()
	restarted := time.Now()
	require.Eventually(t, func() bool {
		for _, c := range f.caches {
			if !stampede.Subscribed(c) {
				return false
			}
		}
		return len(db.loadsSince(killed)) == len(keys)
	}, 10*time.Second, time.Millisecond, "every key is loaded again")
	allBack := time.Since(restarted)
	// Every instance has read every key since; then the load runs on, to catch extra loads.
	time.Sleep(time.Second)
	samples := stop()
	stopped = true
	end := time.Now()

	before := summarizeReads(samples, time.Time{}, killed)
	around := summarizeReads(samples, killed, end)
	loads := db.loadsSince(killed)
	t.Logf("Redis was down %v; every instance subscribed again and every key was loaded again %v after the restart (%v after the kill)",
		restarted.Sub(killed).Round(time.Millisecond), allBack.Round(time.Millisecond), (allBack + restarted.Sub(killed)).Round(time.Millisecond))
	t.Logf("before: %v; from the kill on: %v; loads per key since the kill: %v; Redis errors %d",
		before, around, loads, redisErrors(f.caches))
	require.Zero(t, before.errors+around.errors, "callers see no error: %v", errors.Join(before.firstErr, around.firstErr))
	for _, k := range keys {
		require.Equal(t, 1, loads[k], "%s: one load fleet-wide after the restart", k)
	}
	db.mu.Lock()
	require.Equal(t, 1, db.maxOnce)
	db.mu.Unlock()
}

// leaseHolderEnv, set to a namespace, makes TestFaultLeaseHolderDies the process that takes the
// lease and is killed.
const leaseHolderEnv = "STAMPEDE_TEST_LEASE_HOLDER"

// TestFaultLeaseHolderDies: another process (this test binary, run again) takes a key's lease
// through a Get whose load never ends, and is killed with SIGKILL while instances of this
// process wait for it. Its lease stops being extended and expires; one waiter takes it and
// loads, once, and every waiter gets the value.
func TestFaultLeaseHolderDies(t *testing.T) {
	const leaseTTL = time.Second
	if ns := os.Getenv(leaseHolderEnv); ns != "" {
		holdLease(t, ns, leaseTTL)
		return
	}
	addr := redistest.Addr(t)
	ns := redistest.Namespace(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestFaultLeaseHolderDies$", "-test.count=1")
	cmd.Env = append(os.Environ(), leaseHolderEnv+"="+ns)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	loading := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "loading") {
				loading <- s.Text()
			}
		}
		close(loading)
	}()
	select {
	case line, ok := <-loading:
		require.True(t, ok, "the lease holder ended before it loaded")
		t.Logf("the other process: %s", line)
	case <-time.After(30 * time.Second):
		t.Fatal("the lease holder did not start loading")
	}
	lock := scripts.KeysFor(ns, "k").Lock
	admin := redistest.Real(t)
	require.EqualValues(t, 1, admin.Exists(ctx, lock).Val(), "the other process holds the lease")

	const n, callers = 4, 40
	f := faultFleet(t, addr, ns, n, stampede.WithLeaseTTL(leaseTTL))
	var loads atomic.Int64
	load := func(context.Context, string) (string, error) {
		loads.Add(1)
		time.Sleep(10 * time.Millisecond)
		return "v", nil
	}
	done := make([]time.Time, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			var v string
			v, errs[i] = f.caches[i%n].Get(ctx, "k", load)
			if errs[i] == nil && v != "v" {
				errs[i] = fmt.Errorf("got %q", v)
			}
			done[i] = time.Now()
		})
	}
	require.Eventually(t, func() bool {
		for _, c := range f.caches {
			if c.Stats().LeaseWaits == 0 {
				return false
			}
		}
		return true
	}, 5*time.Second, time.Millisecond, "every instance waits for the other process")
	// The other process extends its lease: the waiters still wait after a whole lease TTL.
	time.Sleep(leaseTTL + leaseTTL/2)
	require.Zero(t, loads.Load())
	require.EqualValues(t, 1, admin.Exists(ctx, lock).Val())
	left, _ := leaseLeft(ctx, admin, lock)

	killed := time.Now()
	require.NoError(t, cmd.Process.Kill()) // SIGKILL: no Close, no release
	_ = cmd.Wait()
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	var lags []time.Duration
	for _, d := range done {
		lags = append(lags, d.Sub(killed))
	}
	slices.Sort(lags)
	t.Logf("the lease had %v left when its holder was killed; %d waiters on %d instances got the value %v (first) %v (last) after the kill, with %d load",
		left, callers, n, lags[0], lags[callers-1], loads.Load())
	require.EqualValues(t, 1, loads.Load(), "exactly one more load")
	require.Less(t, lags[callers-1], leaseTTL+faultSlack(), "the waiters take over once the lease expires")
	require.Greater(t, lags[0], left/2, "nobody takes a live lease")
}

// holdLease is the other process of TestFaultLeaseHolderDies: it takes the lease of "k" in ns
// through a Get whose load says so and then never ends, until the process is killed.
func holdLease(t *testing.T, ns string, leaseTTL time.Duration) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Addr(t), ContextTimeoutEnabled: true})
	c, err := stampede.New[string](client, stampede.WithNamespace(ns), stampede.WithLeaseTTL(leaseTTL),
		stampede.WithLoadTimeout(30*time.Second))
	require.NoError(t, err)
	_, _ = c.Get(ctx, "k", func(ctx context.Context, key string) (string, error) {
		fmt.Println("loading, as process", os.Getpid())
		<-ctx.Done() // the load timeout, if nobody kills this process
		return "", ctx.Err()
	})
	t.Fatal("the lease holder was not killed")
}

// TestFaultSlowLoaderOutlivesLease: on real Redis, a load four times longer than the lease TTL
// keeps its lease (no second load starts on any of 8 instances), and the lease is released as
// soon as the load ends, or fails.
func TestFaultSlowLoaderOutlivesLease(t *testing.T) {
	addr := redistest.Addr(t)
	const (
		n        = 8
		leaseTTL = 400 * time.Millisecond
		loadTime = 4 * leaseTTL
	)
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "ends", true: "fails"}[fail], func(t *testing.T) {
			ns := redistest.Namespace(t)
			f := faultFleet(t, addr, ns, n, stampede.WithLeaseTTL(leaseTTL))
			admin := redistest.Real(t)
			lock := scripts.KeysFor(ns, "slow").Lock
			var loads, running atomic.Int64
			load := func(ctx context.Context, key string) (string, error) {
				loads.Add(1)
				running.Add(1)
				defer running.Add(-1)
				time.Sleep(loadTime)
				if fail {
					return "", errDatabase
				}
				return "v", nil
			}
			// Watch the lease while the load runs: it must never be missing.
			watchDone := make(chan struct{})
			var gaps, samples atomic.Int64
			var minLeft atomic.Int64
			minLeft.Store(int64(time.Hour))
			go func() {
				defer close(watchDone)
				for running.Load() == 0 {
					time.Sleep(time.Millisecond)
				}
				for running.Load() > 0 {
					left, err := leaseLeft(ctx, admin, lock)
					if running.Load() == 0 {
						break
					}
					samples.Add(1)
					if err != nil || left < 0 {
						gaps.Add(1)
					} else if int64(left) < minLeft.Load() {
						minLeft.Store(int64(left))
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
			start := time.Now()
			_, errs := getAll(ctx, f.caches, 8*n, "slow", load)
			took := time.Since(start)
			exists := admin.Exists(ctx, lock).Val()
			<-watchDone
			for _, err := range errs {
				if fail {
					require.ErrorContains(t, err, errDatabase.Error())
				} else {
					require.NoError(t, err)
				}
			}
			t.Logf("a %v load under a %v lease: %d load, every caller answered after %v; the lease was checked %d times during the load, missing %d times, at least %v left",
				loadTime, leaseTTL, loads.Load(), took.Round(time.Millisecond), samples.Load(), gaps.Load(), time.Duration(minLeft.Load()))
			require.EqualValues(t, 1, loads.Load(), "no second load starts anywhere")
			require.Zero(t, gaps.Load(), "the lease never lapses while the load runs")
			require.Zero(t, exists, "the lease is released when the load ends")
		})
	}
}

// TestFaultSubscriptionKilled kills one instance's pub/sub connection (CLIENT KILL ID of that
// connection only, as other tests share this Redis) while that instance waits for another's
// load, and ends the load at various moments around the kill: the waiter always finishes, well
// within the lease TTL (a lost notification is made up by the wake-up on resubscription), and the
// instance's L1 is emptied once it has subscribed again. In a last round the instance may not
// subscribe again for a while, and its waiter finishes by polling.
func TestFaultSubscriptionKilled(t *testing.T) {
	addr := redistest.Addr(t)
	ns := redistest.Namespace(t)
	const leaseTTL = 3 * time.Second
	a := faultFleet(t, addr, ns, 1, stampede.WithLeaseTTL(leaseTTL)).caches[0]
	name := strings.NewReplacer(":", "-", " ", "_").Replace(ns)
	clientB := faultClient(addr, name)
	t.Cleanup(func() { _ = clientB.Close() })
	b, err := stampede.New[string](clientB, stampede.WithNamespace(ns), stampede.WithRedisTimeout(faultTimeout),
		stampede.WithLeaseTTL(leaseTTL))
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	admin := redistest.Real(t)

	var finished []time.Duration
	for round, delay := range []time.Duration{0, 0, time.Millisecond, 5 * time.Millisecond, 20 * time.Millisecond, 150 * time.Millisecond} {
		key := fmt.Sprint("k", round)
		for range 2 { // B keeps a key in its L1
			_, err := b.Get(ctx, "cached", func(context.Context, string) (string, error) { return "c", nil })
			require.NoError(t, err)
		}
		require.Eventually(t, func() bool { return stampede.InL1(b, "cached") }, time.Second, time.Millisecond)

		src := newSource("v")
		started, release := src.hold()
		go func() { _, _ = a.Get(ctx, key, src.load) }()
		<-started
		waits := b.Stats().LeaseWaits
		got := make(chan error, 1)
		go func() {
			v, err := b.Get(ctx, key, src.load)
			if err == nil && v != "v" {
				err = fmt.Errorf("got %q", v)
			}
			got <- err
		}()
		require.Eventually(t, func() bool { return b.Stats().LeaseWaits > waits }, 5*time.Second, time.Millisecond)

		require.Equal(t, 1, killSubscription(t, admin, name), "round %d", round)
		time.Sleep(delay) // the load ends this long after the kill
		released := time.Now()
		release()
		select {
		case err := <-got:
			require.NoError(t, err)
		case <-time.After(leaseTTL):
			t.Fatalf("round %d: the waiter did not finish within the lease TTL", round)
		}
		finished = append(finished, time.Since(released))
		require.EqualValues(t, 1, src.calls.Load())
		require.Eventually(t, func() bool { return stampede.Subscribed(b) && !stampede.InL1(b, "cached") }, 5*time.Second, time.Millisecond,
			"B subscribes again and empties its L1")
	}
	t.Logf("the waiter finished %v after the load ended (kill, then the load ended 0, 0, 1, 5, 20, 150 ms later)", finished)
	for _, d := range finished {
		require.Less(t, d, 2*faultSlack()+100*time.Millisecond, "a poll or the resubscription, not the lease TTL")
	}

	// A last round where B may not subscribe again for a while (its Redis user loses the right
	// to): B's waiter polls.
	user := name + "-user"
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", user, "on", ">"+user, "~*", "&*", "+@all").Err())
	t.Cleanup(func() { _ = admin.Do(context.Background(), "ACL", "DELUSER", user).Err() })
	opt := clientB.Options()
	opt.Username, opt.Password, opt.ClientName = user, user, user
	clientC := redis.NewClient(opt)
	t.Cleanup(func() { _ = clientC.Close() })
	c, err := stampede.New[string](clientC, stampede.WithNamespace(ns), stampede.WithRedisTimeout(faultTimeout),
		stampede.WithLeaseTTL(leaseTTL))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	src := newSource("v")
	started, release := src.hold()
	go func() { _, _ = a.Get(ctx, "polled", src.load) }()
	<-started
	got := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "polled", src.load)
		got <- err
	}()
	require.Eventually(t, func() bool { return c.Stats().LeaseWaits == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", user, "-subscribe").Err())
	require.Equal(t, 1, killSubscription(t, admin, user))
	require.Eventually(t, func() bool { return !stampede.Subscribed(c) }, 5*time.Second, time.Millisecond)
	time.Sleep(250 * time.Millisecond) // a few polls find the lease still held
	released := time.Now()
	release()
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(leaseTTL):
		t.Fatal("the polling waiter did not finish within the lease TTL")
	}
	polled := time.Since(released)
	require.False(t, stampede.Subscribed(c), "the waiter finished by polling")
	require.NoError(t, admin.Do(ctx, "ACL", "SETUSER", user, "+subscribe").Err())
	require.Eventually(t, func() bool { return stampede.Subscribed(c) }, 10*time.Second, time.Millisecond)
	t.Logf("without a subscription, the waiter finished %v after the load ended (it polls every 100 ms)", polled)
	require.Less(t, polled, 100*time.Millisecond+faultSlack())
}

// killSubscription kills the pub/sub connection of the client named name and returns how many
// it killed.
func killSubscription(t *testing.T, admin *redis.Client, name string) int {
	t.Helper()
	var lines []string
	// go-redis may still be reconnecting the previous one: wait for it to show up.
	require.Eventually(t, func() bool {
		list, err := admin.ClientList(ctx).Result()
		lines = subscribedLines(list, name)
		return err == nil && len(lines) > 0
	}, 5*time.Second, time.Millisecond, "no subscribed connection named %s", name)
	for _, line := range lines {
		id := strings.TrimPrefix(strings.Fields(line)[0], "id=")
		require.NoError(t, admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err())
	}
	return len(lines)
}

// subscribedLines returns the CLIENT LIST lines of the subscribed connections named name.
func subscribedLines(list, name string) []string {
	var lines []string
	for _, line := range strings.Split(list, "\n") {
		fields := strings.Fields(line)
		if slices.Contains(fields, "name="+name) && slices.Contains(fields, "sub=1") {
			lines = append(lines, line)
		}
	}
	return lines
}
