package stampede_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
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

// The seams on real services: the twins of the tests in seams_test.go, in real time against the
// Redis in STAMPEDE_REDIS_ADDR (and the Redis Cluster in STAMPEDE_REDIS_CLUSTER_ADDRS for the
// replicas). Each logs what it measured.

// brittle is a value whose JSON encoding panics while brittlePanics is set (touchy's twin, with
// a switch of its own).
type brittle struct{ N int }

var brittlePanics atomic.Bool

func (b brittle) MarshalJSON() ([]byte, error) {
	if brittlePanics.Load() {
		panic("MarshalJSON: boom")
	}
	return json.Marshal(struct{ N int }{b.N})
}

// realFleetOf is realFleet for values of any type.
func realFleetOf[V any](t *testing.T, n int, opts ...stampede.Option) []*stampede.Cache[V] {
	t.Helper()
	addr := redistest.Addr(t)
	opts = append([]stampede.Option{stampede.WithNamespace(redistest.Namespace(t))}, opts...)
	caches := make([]*stampede.Cache[V], n)
	for i := range caches {
		client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true})
		t.Cleanup(func() { _ = client.Close() })
		c, err := stampede.New[V](client, opts...)
		require.NoError(t, err)
		require.True(t, stampede.Subscribed(c))
		t.Cleanup(func() { _ = c.Close() })
		caches[i] = c
	}
	return caches
}

// TestIntegrationSeamsCodecPanic: a value whose MarshalJSON panics during a background refresh
// (stale-while-revalidate, on the cache's goroutine) and during a fill that another instance
// waits for does not crash the process. The refresh fails with a *PanicError that OnLoad,
// Stats.CodecErrors and Stats.LoadErrors see; the fill's caller gets the *PanicError, and the
// waiter on the other instance is told at once, not left to the lease TTL.
func TestIntegrationSeamsCodecPanic(t *testing.T) {
	brittlePanics.Store(false)
	t.Cleanup(func() { brittlePanics.Store(false) })
	const ttl, leaseTTL = 200 * time.Millisecond, 2 * time.Second
	var mu sync.Mutex
	var loadErrs []error
	hooks := stampede.Hooks{OnLoad: func(_ string, _ time.Duration, err error) {
		mu.Lock()
		loadErrs = append(loadErrs, err)
		mu.Unlock()
	}}
	hookErrs := func() []error {
		mu.Lock()
		defer mu.Unlock()
		return append([]error(nil), loadErrs...)
	}
	caches := realFleetOf[brittle](t, 2, stampede.WithoutL1(), stampede.WithTTL(ttl),
		stampede.WithStaleWhileRevalidate(time.Minute), stampede.WithEarlyRefresh(0),
		stampede.WithLeaseTTL(leaseTTL), stampede.WithHooks(hooks))
	a, b := caches[0], caches[1]
	load := func(context.Context, string) (brittle, error) { return brittle{N: 1}, nil }
	v, err := a.Get(ctx, "k", load)
	require.NoError(t, err)
	require.Equal(t, 1, v.N)

	// A background refresh encodes on the cache's goroutine: the first Get served the value
	// stale starts it.
	brittlePanics.Store(true)
	var staleErr error
	var staleN int
	require.Eventually(t, func() bool {
		v, err := a.Get(ctx, "k", load)
		staleErr, staleN = err, v.N
		return err != nil || a.Stats().StaleServed > 0
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, staleErr)
	require.Equal(t, 1, staleN, "the stale value is served while the refresh runs")
	staleAt := time.Now()
	require.Eventually(t, func() bool { return len(hookErrs()) >= 2 }, 5*time.Second, time.Millisecond)
	refreshFailedIn := time.Since(staleAt)
	st := a.Stats()
	require.EqualValues(t, 1, st.EarlyRefreshes)
	require.EqualValues(t, 1, st.CodecErrors)
	require.EqualValues(t, 1, st.LoadErrors)
	errs := hookErrs()
	require.Len(t, errs, 2)
	require.NoError(t, errs[0])
	var pe *stampede.PanicError
	require.ErrorAs(t, errs[1], &pe, "OnLoad hears of the panic")
	require.Equal(t, "MarshalJSON: boom", pe.Value)
	t.Logf("background refresh: the encode panic was reported %v after the stale read, as %q; CodecErrors=%d LoadErrors=%d",
		refreshFailedIn.Round(time.Microsecond), errs[1], st.CodecErrors, st.LoadErrors)
	v, err = a.Get(ctx, "k", load)
	require.NoError(t, err, "the process goes on serving the stale value")
	require.Equal(t, 1, v.N)

	// A fill that the other instance waits for, of another key (k is backed off for a moment,
	// and messages about it are still on their way).
	waitsBefore := b.Stats().LeaseWaits
	var calls atomic.Int32
	var loaderReturned atomic.Int64
	started := make(chan struct{})
	slow := func(ctx context.Context, _ string) (brittle, error) {
		if calls.Add(1) == 1 {
			close(started)
		}
		// Return once the other instance waits for this load.
		for b.Stats().LeaseWaits == waitsBefore && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		loaderReturned.Store(time.Now().UnixNano())
		return brittle{N: 2}, nil
	}
	leaderErr := make(chan error, 1)
	go func() {
		_, err := a.Get(ctx, "k2", slow)
		leaderErr <- err
	}()
	<-started
	begin := time.Now()
	_, err = b.Get(ctx, "k2", slow)
	end := time.Now()
	waited := end.Sub(begin)
	require.ErrorContains(t, err, "MarshalJSON: boom", "the waiter hears why the load failed")
	var errA error
	select {
	case errA = <-leaderErr:
	case <-time.After(5 * time.Second):
		t.Fatal("the Get of the load that panicked did not return")
	}
	require.ErrorAs(t, errA, &pe)
	require.ErrorContains(t, errA, "MarshalJSON: boom")
	require.EqualValues(t, 1, calls.Load(), "one load, on instance 0")
	require.EqualValues(t, waitsBefore+1, b.Stats().LeaseWaits)
	require.EqualValues(t, 2, a.Stats().CodecErrors)
	require.EqualValues(t, 2, a.Stats().LoadErrors)
	told := end.Sub(time.Unix(0, loaderReturned.Load()))
	t.Logf("fill: the waiter on instance 1 returned %v after it began and %v after the loader returned (lease TTL %v): %q",
		waited.Round(time.Microsecond), told.Round(time.Microsecond), leaseTTL, err)
	require.Less(t, waited, time.Second, "the waiter was told, not left to the lease TTL")
}

// TestIntegrationSeamsHookPanic: hooks that panic on the caller's goroutine (OnLoad of a Get)
// and on the cache's (OnEarlyRefresh and OnLoad of a background refresh) are logged once each
// and otherwise ignored: the cache goes on loading and refreshing.
func TestIntegrationSeamsHookPanic(t *testing.T) {
	log := &records{}
	var onLoad, onEarly atomic.Int32
	hooks := stampede.Hooks{
		OnLoad:         func(string, time.Duration, error) { onLoad.Add(1); panic("hook: boom") },
		OnEarlyRefresh: func(string) { onEarly.Add(1); panic("hook: boom") },
	}
	c := realFleetOf[string](t, 1, stampede.WithoutL1(), stampede.WithTTL(200*time.Millisecond),
		stampede.WithStaleWhileRevalidate(time.Minute), stampede.WithEarlyRefresh(0),
		stampede.WithHooks(hooks), stampede.WithLogger(slog.New(log)))[0]
	src := newSource("v")
	v, err := c.Get(ctx, "k", src.load)
	require.NoError(t, err)
	require.Equal(t, "v", v)
	const refreshes = 3
	for round := 1; round <= refreshes; round++ {
		// Read until the value is stale and a refresh starts; at most one does, since the next
		// goes stale a TTL after it, and another is not started while it runs.
		var getErr error
		require.Eventually(t, func() bool {
			v, err := c.Get(ctx, "k", src.load)
			if err == nil && v != "v" {
				err = errors.New("got " + v)
			}
			getErr = err
			return err != nil || onEarly.Load() >= int32(round)
		}, 5*time.Second, 10*time.Millisecond)
		require.NoError(t, getErr)
		require.Eventually(t, func() bool { return onLoad.Load() >= int32(round+1) }, 5*time.Second, time.Millisecond,
			"refresh %d loads", round)
	}
	require.EqualValues(t, refreshes, onEarly.Load())
	require.EqualValues(t, refreshes+1, onLoad.Load())
	require.EqualValues(t, refreshes+1, src.calls.Load())
	require.EqualValues(t, refreshes, c.Stats().EarlyRefreshes)
	nLoad, nEarly := log.count("hook=OnLoad"), log.count("hook=OnEarlyRefresh")
	t.Logf("OnLoad panicked %d times and OnEarlyRefresh %d times: logged %d and %d times; %d loads",
		onLoad.Load(), onEarly.Load(), nLoad, nEarly, src.calls.Load())
	require.Equal(t, 1, nLoad, "OnLoad's panic is logged once")
	require.Equal(t, 1, nEarly, "OnEarlyRefresh's panic is logged once")
	require.Equal(t, 2, log.count("hook: boom"))
}

// TestIntegrationSeamsStuckLoader: a loader that ignores its ctx holds its key no longer than
// the load timeout: its caller gets ErrLoadTimeout, and another instance, waiting, loads the key
// itself within the load timeout and a lease TTL. Close with a stuck load in flight returns
// within its documented bound (1 s for loaders).
func TestIntegrationSeamsStuckLoader(t *testing.T) {
	const loadTimeout, leaseTTL = 300 * time.Millisecond, 200 * time.Millisecond
	caches := realFleet(t, 2, stampede.WithLoadTimeout(loadTimeout), stampede.WithLeaseTTL(leaseTTL))
	a, b := caches[0], caches[1]
	stuck := make(chan struct{})
	t.Cleanup(func() { close(stuck) }) // before the caches close: cleanups run last first
	stuckLoader := func(started chan struct{}) stampede.Loader[string] {
		var once sync.Once
		return func(context.Context, string) (string, error) {
			once.Do(func() { close(started) })
			<-stuck // ignores its ctx
			return "late", nil
		}
	}

	started := make(chan struct{})
	stuckErr := make(chan error, 1)
	go func() {
		_, err := a.Get(ctx, "k", stuckLoader(started))
		stuckErr <- err
	}()
	<-started
	begin := time.Now()
	v, err := b.Get(ctx, "k", func(context.Context, string) (string, error) { return "good", nil })
	took := time.Since(begin)
	require.NoError(t, err)
	require.Equal(t, "good", v)
	t.Logf("time to load elsewhere after a stuck loader: %v (load timeout %v, lease TTL %v)",
		took.Round(time.Microsecond), loadTimeout, leaseTTL)
	require.LessOrEqual(t, took, loadTimeout+leaseTTL+300*time.Millisecond)
	select {
	case err = <-stuckErr:
	case <-time.After(5 * time.Second):
		t.Fatal("the Get of the stuck load did not return")
	}
	require.ErrorIs(t, err, stampede.ErrLoadTimeout)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Equal(t, "good", mustGet(t, a, "k"), "instance 0 reads what instance 1 loaded")

	// Another stuck load, then Close.
	started = make(chan struct{})
	k2Err := make(chan error, 1)
	go func() {
		_, err := a.Get(ctx, "k2", stuckLoader(started))
		k2Err <- err
	}()
	<-started
	begin = time.Now()
	require.NoError(t, a.Close())
	closed := time.Since(begin)
	t.Logf("Close with a stuck load in flight returned in %v", closed.Round(time.Microsecond))
	require.Less(t, closed, 1300*time.Millisecond, "Close waits at most 1 s for loaders")
	select {
	case err = <-k2Err:
	case <-time.After(time.Second):
		t.Fatal("the Get of the stuck load did not return at Close")
	}
	require.ErrorIs(t, err, stampede.ErrClosed)
}

// mustGet reads key on c with a loader that must not be called.
func mustGet(t *testing.T, c *stampede.Cache[string], key string) string {
	t.Helper()
	v, err := c.Get(ctx, key, func(context.Context, string) (string, error) {
		return "", errors.New("unexpected load")
	})
	require.NoError(t, err)
	return v
}

// TestIntegrationSeamsCancelledRefresh: a Refresh whose caller gives up during the load (the
// loader returns a driver's error, not a context error) releases the lease as released, not
// failed: no instance backs off, and the other instances' readers, who wait for that lease,
// get no error and load the key themselves. The TTL is shorter than the Refresh, so that the
// value it marked stale is soon past serving and the readers wait for its lease.
func TestIntegrationSeamsCancelledRefresh(t *testing.T) {
	const ttl, refreshTimeout = 20 * time.Millisecond, 100 * time.Millisecond
	caches := realFleet(t, 3, stampede.WithTTL(ttl))
	src := newSource("v1")
	for _, c := range caches {
		v, err := c.Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v1", v)
	}
	loadsBefore := src.calls.Load()

	// 16 readers on instances 1 and 2, from the start of the Refresh's load until 1 s after the
	// Refresh returned.
	const readAfter, readers = time.Second, 16
	var gets, failures atomic.Int64
	var firstErr atomic.Value
	var refreshed atomic.Int64 // when the Refresh returned, Unix nanoseconds
	var wg sync.WaitGroup
	read := func(c *stampede.Cache[string]) {
		for {
			if r := refreshed.Load(); r != 0 && time.Since(time.Unix(0, r)) > readAfter {
				return
			}
			v, err := c.Get(ctx, "k", src.load)
			gets.Add(1)
			if err == nil && v != "v1" {
				err = errors.New("got " + v)
			}
			if err != nil {
				failures.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		}
	}
	cctx, cancel := context.WithTimeout(ctx, refreshTimeout)
	defer cancel()
	var once sync.Once
	begin := time.Now()
	_, err := caches[0].Refresh(cctx, "k", func(ctx context.Context, _ string) (string, error) {
		once.Do(func() {
			for g := range readers {
				wg.Go(func() { read(caches[1+g%2]) })
			}
		})
		<-ctx.Done()
		return "", errors.New("driver: query canceled") // not context.Canceled
	})
	refreshed.Store(time.Now().UnixNano())
	refreshTook := time.Since(begin)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, stampede.BackoffActive(caches[0], "k"), "a cancelled load is no failure")
	wg.Wait()
	waits := caches[1].Stats().LeaseWaits + caches[2].Stats().LeaseWaits
	t.Logf("the Refresh gave up after %v with %q; %d Gets on instances 1 and 2, from its start to 1 s after: %d errors (first: %v); %d lease waits, %d loads",
		refreshTook.Round(time.Microsecond), err, gets.Load(), failures.Load(), firstErr.Load(), waits, src.calls.Load()-loadsBefore)
	require.Zero(t, failures.Load(), "first error: %v", firstErr.Load())
	require.Positive(t, waits, "readers waited for leases")
	for i, c := range caches {
		require.False(t, stampede.BackoffActive(c, "k"), "instance %d backs off", i)
	}
	require.Zero(t, caches[1].Stats().LoadErrors+caches[2].Stats().LoadErrors)
}

// TestIntegrationSeamsReplicaAfterWrite: on the Redis Cluster, an instance that replicates a key
// (by its per-call policy) reads replicas that a write by another instance (which does not
// replicate it) left with the older value. Once the write's message has reached it, neither
// the replicas nor its L1 bring that older value back.
func TestIntegrationSeamsReplicaAfterWrite(t *testing.T) {
	ns := redistest.Namespace(t)
	caches := append(clusterFleet(t, ns, 1, stampede.WithL1(100, time.Hour), stampede.WithReplicas(2)),
		clusterFleet(t, ns, 1, stampede.WithL1(100, time.Hour))...)
	cc := redistest.Cluster(t)
	rks := scripts.ReplicaKeys(ns, "k", 2)
	replicasHold := func(value string) bool {
		for _, rk := range rks {
			raw, err := cc.Get(ctx, rk).Bytes()
			if err != nil || !bytes.Contains(raw, []byte(`"`+value+`"`)) {
				return false
			}
		}
		return true
	}
	src := newSource("v1")
	_, err := caches[0].Get(ctx, "k", src.load)
	require.NoError(t, err)
	require.Eventually(t, func() bool { // both replicas hold v1
		v, err := caches[0].Get(ctx, "k", src.load, stampede.WithoutL1())
		return err == nil && v == "v1" && replicasHold("v1")
	}, 5*time.Second, 10*time.Millisecond)
	v, err := caches[0].Get(ctx, "k", src.load)
	require.NoError(t, err)
	require.Equal(t, "v1", v)
	require.True(t, stampede.InL1(caches[0], "k"))

	require.NoError(t, caches[1].Set(ctx, "k", "v2")) // no replicas in its policy
	set := time.Now()
	require.True(t, replicasHold("v1"), "the write left the replicas with the older value")
	require.Eventually(t, func() bool { return !stampede.InL1(caches[0], "k") }, 5*time.Second, time.Millisecond,
		"the write's message reaches instance 0")
	heard := time.Since(set)

	before := caches[0].Stats()
	const readFor = 200 * time.Millisecond
	reads := 0
	for until := time.Now().Add(readFor); time.Now().Before(until); reads++ {
		var opts []stampede.GetOption
		if reads%2 == 1 { // every other read goes past the L1 to a replica
			opts = append(opts, stampede.WithoutL1())
		}
		v, err := caches[0].Get(ctx, "k", src.load, opts...)
		require.NoError(t, err, "read %d", reads)
		require.Equal(t, "v2", v, "read %d after the write", reads)
	}
	after := caches[0].Stats()
	t.Logf("the write's message reached instance 0 in %v; then %d reads in %v, all v2 (replica hits %d, replica misses %d, L1 hits %d)",
		heard.Round(time.Microsecond), reads, readFor, after.ReplicaHits-before.ReplicaHits,
		after.ReplicaMisses-before.ReplicaMisses, after.L1Hits-before.L1Hits)
	require.Positive(t, reads)
	require.EqualValues(t, 1, src.calls.Load())
}
