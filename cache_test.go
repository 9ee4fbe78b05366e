package stampede_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/envelope"
	"github.com/stampede-cache/stampede/internal/redistest"
	"github.com/stampede-cache/stampede/internal/scripts"
)

var ctx = context.Background()

func TestGetLoadsOnceThenServesL1AndL2(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 2)
		src := newSource("celeb")

		for range 3 {
			v, err := caches[0].Get(ctx, "user:1", src.load)
			require.NoError(t, err)
			require.Equal(t, "celeb", v)
			synctest.Wait() // the fill's message reaches the subscription
		}
		v, err := caches[1].Get(ctx, "user:1", src.load)
		require.NoError(t, err)
		require.Equal(t, "celeb", v)

		require.EqualValues(t, 1, src.calls.Load())
		// The fill's own message, which may come before its reply, leaves the value in the L1.
		require.Equal(t, stampede.Stats{Gets: 3, L1Hits: 2, Misses: 1, Loads: 1}, counters(caches[0].Stats()))
		require.Equal(t, stampede.Stats{Gets: 1, L2Hits: 1}, counters(caches[1].Stats()))
	})
}

func TestStampedeOnOneInstanceLoadsOnce(t *testing.T) {
	for _, strategy := range []stampede.Strategy{stampede.Lease, stampede.Singleflight} {
		t.Run(strategy.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := one[string](t, redistest.Mini(t), stampede.WithStrategy(strategy))
				src := newSource("v")
				src.latency = 50 * time.Millisecond
				values, errs := getAll(ctx, []*stampede.Cache[string]{c}, 1000, "hot", src.load)
				for i := range values {
					require.NoError(t, errs[i])
					require.Equal(t, "v", values[i])
				}
				require.EqualValues(t, 1, src.calls.Load())
			})
		})
	}
}

// TestStampedeAcrossInstances is the incident: a just-deleted hot key, read at once by callers
// on eight instances. Lease loads it once; Singleflight once per instance.
func TestStampedeAcrossInstances(t *testing.T) {
	for _, tt := range []struct {
		strategy stampede.Strategy
		loads    int64
	}{{stampede.Lease, 1}, {stampede.Singleflight, 8}} {
		t.Run(tt.strategy.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				caches := fleet[string](t, redistest.Mini(t), 8, stampede.WithStrategy(tt.strategy))
				src := newSource("v")
				src.latency = 50 * time.Millisecond
				require.NoError(t, caches[0].Delete(ctx, "user:celeb"))

				start := time.Now()
				values, errs := getAll(ctx, caches, 2000, "user:celeb", src.load)
				for i := range values {
					require.NoError(t, errs[i])
					require.Equal(t, "v", values[i])
				}
				require.Equal(t, tt.loads, src.calls.Load())
				// Waiters are woken by a notification as the load ends: no polling interval.
				require.Equal(t, src.latency, time.Since(start))
			})
		})
	}
}

// TestWaiterIsNotifiedNotPolling holds another instance's load and checks that the waiter
// returns at the very (fake) instant the load is written, and counts one lease wait.
func TestWaiterIsNotifiedNotPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var waited []time.Duration
		hooks := stampede.Hooks{OnLeaseWait: func(key string, d time.Duration) { waited = append(waited, d) }}
		caches := fleet[string](t, redistest.Mini(t), 2, stampede.WithHooks(hooks))
		src := newSource("v")
		started, release := src.hold()

		leaderDone := make(chan error)
		go func() {
			_, err := caches[0].Get(ctx, "k", src.load)
			leaderDone <- err
		}()
		<-started

		waiterDone := make(chan time.Time)
		go func() {
			v, err := caches[1].Get(ctx, "k", src.load)
			require.NoError(t, err)
			require.Equal(t, "v", v)
			waiterDone <- time.Now()
		}()
		time.Sleep(1500 * time.Millisecond) // the waiter waits, however long the load takes
		synctest.Wait()
		require.EqualValues(t, 1, caches[1].Stats().LeaseWaits)

		releasedAt := time.Now()
		release()
		require.NoError(t, <-leaderDone)
		require.Equal(t, releasedAt, <-waiterDone)
		require.EqualValues(t, 1, src.calls.Load())
		require.Equal(t, []time.Duration{1500 * time.Millisecond}, waited)
	})
}

// TestHolderDiesWaiterTakesOver: the holder of a lease vanishes without a fill. A waiter takes
// the lease when it expires and loads, once.
func TestHolderDiesWaiterTakesOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithLeaseTTL(2*time.Second))
		k := scripts.KeysFor("stampede", "k")
		dead, err := scripts.Lease(ctx, redistest.Client(t, m), k, scripts.LeaseArgs{Token: "dead", LeaseTTL: 2 * time.Second, GenTTL: time.Minute})
		require.NoError(t, err)
		require.Equal(t, scripts.Acquired, dead.State)

		src := newSource("v")
		start := time.Now()
		v, err := c.Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v", v)
		require.EqualValues(t, 1, src.calls.Load())
		took := time.Since(start)
		require.GreaterOrEqual(t, took, 2*time.Second)
		require.Less(t, took, 2*time.Second+50*time.Millisecond)
	})
}

// TestSlowLoadKeepsItsLease: a load three times longer than the lease TTL extends its lease, so
// waiters on other instances never start a second load; the lease is released at the end.
func TestSlowLoadKeepsItsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 3, stampede.WithLeaseTTL(time.Second))
		src := newSource("v")
		src.latency = 3500 * time.Millisecond
		values, errs := getAll(ctx, caches, 30, "slow", src.load)
		for i := range values {
			require.NoError(t, errs[i])
		}
		require.EqualValues(t, 1, src.calls.Load())
		require.False(t, m.Exists("stampede:{slow}:lock"), "the lease is released")
	})
}

func TestLoaderPanicReachesEveryWaiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 2)
		var calls atomic.Int64
		boom := func(ctx context.Context, key string) (string, error) {
			calls.Add(1)
			time.Sleep(10 * time.Millisecond)
			panic("boom")
		}
		_, errs := getAll(ctx, caches, 100, "k", boom)
		require.EqualValues(t, 1, calls.Load())
		local := 0
		for _, err := range errs {
			require.ErrorContains(t, err, "panic in user code: boom")
			var pe *stampede.PanicError
			if errors.As(err, &pe) { // a caller on the instance that loaded
				local++
				require.Equal(t, "boom", pe.Value)
				require.Contains(t, string(pe.Stack), "TestLoaderPanicReachesEveryWaiter")
			}
		}
		require.Equal(t, 50, local)
		require.False(t, m.Exists("stampede:{k}:lock"), "the lease is released")

		// Nothing was cached; once the short back-off after a failure is over, a Get loads again.
		time.Sleep(200 * time.Millisecond)
		v, err := caches[1].Get(ctx, "k", newSource("ok").load)
		require.NoError(t, err)
		require.Equal(t, "ok", v)
	})
}

func TestLoaderErrorIsSharedNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 4)
		src := newSource("v")
		src.latency = 20 * time.Millisecond
		src.fail(errDatabase)
		_, errs := getAll(ctx, caches, 400, "k", src.load)
		require.EqualValues(t, 1, src.calls.Load())
		local := 0
		for _, err := range errs {
			require.ErrorContains(t, err, errDatabase.Error())
			if errors.Is(err, errDatabase) {
				local++ // a caller on the instance that loaded
			}
		}
		require.Equal(t, 100, local)
		var loadErrors uint64
		for _, c := range caches {
			loadErrors += c.Stats().LoadErrors
		}
		require.EqualValues(t, 1, loadErrors)
	})
}

// TestFailureBackoff: after a failed load, callers on every instance get the error (or a stale
// value) without calling the source for a short, jittered back-off that doubles while the
// source keeps failing, and the first load after it that succeeds ends it.
func TestFailureBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 3)
		for _, c := range caches {
			stampede.SetRand(c, func() float64 { return 0.5 })
		}
		src := newSource("v")
		src.fail(errDatabase)
		_, err := caches[0].Get(ctx, "k", src.load)
		require.ErrorIs(t, err, errDatabase)
		synctest.Wait() // the failure reaches the other instances

		// First back-off: 100 ms drawn in [50, 100): 75 ms.
		for _, c := range caches {
			_, err := c.Get(ctx, "k", src.load)
			require.ErrorContains(t, err, errDatabase.Error())
		}
		require.EqualValues(t, 1, src.calls.Load())
		time.Sleep(75 * time.Millisecond)
		_, err = caches[1].Get(ctx, "k", src.load)
		require.ErrorContains(t, err, errDatabase.Error())
		require.EqualValues(t, 2, src.calls.Load())
		synctest.Wait()

		// Second failure in a row: 200 ms drawn in [100, 200): 150 ms.
		time.Sleep(149 * time.Millisecond)
		_, err = caches[2].Get(ctx, "k", src.load)
		require.Error(t, err)
		require.EqualValues(t, 2, src.calls.Load())
		time.Sleep(time.Millisecond)
		src.err.Store(nil)
		v, err := caches[2].Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v", v)
		require.EqualValues(t, 3, src.calls.Load())
	})
}

func TestNegativeCaching(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 2, stampede.WithNegativeTTL(5*time.Second))
		var calls atomic.Int64
		missing := func(ctx context.Context, key string) (string, error) {
			calls.Add(1)
			return "", fmt.Errorf("user %s: %w", key, stampede.ErrNotFound)
		}
		_, err := caches[0].Get(ctx, "ghost", missing)
		require.ErrorIs(t, err, stampede.ErrNotFound)
		for _, c := range caches {
			_, err = c.Get(ctx, "ghost", missing)
			require.ErrorIs(t, err, stampede.ErrNotFound)
		}
		require.EqualValues(t, 1, calls.Load())

		time.Sleep(5 * time.Second)
		_, err = caches[1].Get(ctx, "ghost", missing)
		require.ErrorIs(t, err, stampede.ErrNotFound)
		require.EqualValues(t, 2, calls.Load(), "the negative entry expired")
	})
}

func TestNegativeCachingOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 2, stampede.WithNegativeTTL(0))
		var calls, running, most atomic.Int64
		missing := func(ctx context.Context, key string) (string, error) {
			calls.Add(1)
			most.Store(max(most.Load(), running.Add(1)))
			defer running.Add(-1)
			time.Sleep(10 * time.Millisecond)
			return "", stampede.ErrNotFound
		}
		_, errs := getAll(ctx, caches, 50, "ghost", missing)
		for _, err := range errs {
			require.ErrorIs(t, err, stampede.ErrNotFound, "waiters elsewhere learn it was a not-found")
		}
		// Nothing is cached, so callers that arrived during a load get the next one; but
		// loads never overlap, and each instance needs at most two (one running, one boarding).
		require.EqualValues(t, 1, most.Load())
		require.LessOrEqual(t, calls.Load(), int64(2*len(caches)))
		before := calls.Load()
		_, err := caches[0].Get(ctx, "ghost", missing)
		require.ErrorIs(t, err, stampede.ErrNotFound)
		require.Equal(t, before+1, calls.Load(), "nothing was cached")
	})
}

func TestExpiryWithJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithTTL(10*time.Second), stampede.WithJitter(0.2))
		for _, u := range []float64{0, 0.5, 0.999} {
			stampede.SetRand(c, func() float64 { return u })
			key := fmt.Sprint("k", u)
			_, err := c.Get(ctx, key, newSource("v").load)
			require.NoError(t, err)
			want := 10*time.Second - time.Duration(float64(2*time.Second)*u)
			require.Equal(t, want.Truncate(time.Millisecond), m.TTL("stampede:{"+key+"}").Truncate(time.Millisecond))
		}
	})
}

func TestExpiredValueIsReloaded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t), stampede.WithTTL(time.Second), stampede.WithJitter(0), stampede.WithEarlyRefresh(0))
		src := newSource("v1")
		_, err := c.Get(ctx, "k", src.load)
		require.NoError(t, err)
		src.value.Store("v2")
		time.Sleep(999 * time.Millisecond)
		v, _ := c.Get(ctx, "k", src.load)
		require.Equal(t, "v1", v)
		time.Sleep(2 * time.Millisecond) // past the TTL, and past the coarse clock's millisecond
		v, _ = c.Get(ctx, "k", src.load)
		require.Equal(t, "v2", v)
		require.EqualValues(t, 2, src.calls.Load())
	})
}

func TestUnreadableRedisValueIsAMissAndOverwritten(t *testing.T) {
	for name, stored := range map[string]string{
		"foreign":   "written by another program",
		"truncated": string(envelope.Append(nil, envelope.Header{})[:10]),
		"bad json":  string(envelope.Append(nil, envelope.Header{FreshUntil: 1 << 62})) + "{not json",
		"short":     "x",
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := redistest.Mini(t)
				c := one[string](t, m)
				require.NoError(t, m.Set("stampede:{k}", stored))
				v, err := c.Get(ctx, "k", newSource("v").load)
				require.NoError(t, err)
				require.Equal(t, "v", v)
				got, _ := m.Get("stampede:{k}")
				_, payload, err := envelope.ParseString(got)
				require.NoError(t, err)
				require.Equal(t, `"v"`, payload)
			})
		})
	}
}

func TestWaiterContextEndsButLoadGoesOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 2)
		src := newSource("v")
		started, release := src.hold()

		// The caller that starts the load cancels; the load goes on for the other callers.
		leaderCtx, cancelLeader := context.WithCancel(ctx)
		leaderErr := make(chan error)
		go func() {
			_, err := caches[0].Get(leaderCtx, "k", src.load)
			leaderErr <- err
		}()
		<-started
		other := make(chan string)
		go func() {
			v, err := caches[0].Get(ctx, "k", src.load)
			require.NoError(t, err)
			other <- v
		}()
		// A waiter on another instance gives up after its own deadline.
		waitCtx, cancelWait := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancelWait()
		_, err := caches[1].Get(waitCtx, "k", src.load)
		require.ErrorIs(t, err, context.DeadlineExceeded)

		cancelLeader()
		require.ErrorIs(t, <-leaderErr, context.Canceled)
		release()
		require.Equal(t, "v", <-other)
		v, err := caches[1].Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v", v)
		require.EqualValues(t, 1, src.calls.Load())
	})
}

func TestLoadTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t), stampede.WithLoadTimeout(time.Second))
		src := newSource("v")
		_, release := src.hold()
		defer release()
		start := time.Now()
		_, err := c.Get(ctx, "k", src.load)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, time.Second, time.Since(start))
	})
}

func TestPolicyPerKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		policy := func(key string) stampede.Policy {
			if key == "inventory" {
				return stampede.Policy{Strategy: stampede.Singleflight, TTL: time.Second, SkipL1: true}
			}
			return stampede.Policy{TTL: time.Hour}
		}
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 3, stampede.WithPolicy(policy), stampede.WithJitter(0))
		src := newSource("v")
		src.latency = 10 * time.Millisecond
		_, errs := getAll(ctx, caches, 30, "inventory", src.load)
		_, errs2 := getAll(ctx, caches, 30, "profile", src.load)
		for _, err := range append(errs, errs2...) {
			require.NoError(t, err)
		}
		require.EqualValues(t, 3+1, src.calls.Load(), "inventory once per instance, profile once")
		require.InDelta(t, time.Second, m.TTL("stampede:{inventory}"), float64(20*time.Millisecond))
		require.Equal(t, time.Hour, m.TTL("stampede:{profile}"))
		require.False(t, stampede.InL1(caches[0], "inventory"))
	})
}

func TestGetOptionOverridesPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithJitter(0))
		_, err := c.Get(ctx, "k", newSource("v").load, stampede.WithTTL(42*time.Second), stampede.WithoutL1())
		require.NoError(t, err)
		require.Equal(t, 42*time.Second, m.TTL("stampede:{k}"))
		require.False(t, stampede.InL1(c, "k"))

		_, err = c.Get(ctx, "k", newSource("v").load, stampede.WithTTL(-time.Second))
		require.ErrorContains(t, err, "TTL -1s is not positive")
	})
}

func TestRedisDownStillAnswersOncePerInstance(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		var redisErrs atomic.Int64
		c := one[string](t, m, stampede.WithHooks(stampede.Hooks{
			OnRedisError: func(op, key string, err error) { redisErrs.Add(1) },
		}))
		m.SetError("LOADING Redis is loading the dataset in memory")
		src := newSource("v")
		src.latency = 20 * time.Millisecond
		values, errs := getAll(ctx, []*stampede.Cache[string]{c}, 100, "k", src.load)
		for i := range values {
			require.NoError(t, errs[i], "no caller sees a Redis error for a read")
			require.Equal(t, "v", values[i])
		}
		require.EqualValues(t, 1, src.calls.Load())
		require.NotZero(t, c.Stats().RedisErrors)
		require.NotZero(t, redisErrs.Load())

		// The value is kept in the L1 meanwhile.
		v, err := c.Get(ctx, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v", v)
		require.EqualValues(t, 1, src.calls.Load())
	})
}

func TestBadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithMaxValueBytes(64))
		load := newSource("v").load
		long := string(make([]byte, stampede.MaxKeyLen+1))

		_, err := c.Get(ctx, "", load)
		require.ErrorIs(t, err, stampede.ErrInvalidKey)
		_, err = c.Get(ctx, long, load)
		require.ErrorIs(t, err, stampede.ErrInvalidKey)
		_, err = c.Get(ctx, "k", nil)
		require.ErrorIs(t, err, stampede.ErrNilLoader)
		require.ErrorIs(t, c.Set(ctx, "", "v"), stampede.ErrInvalidKey)
		require.ErrorIs(t, c.Delete(ctx, long), stampede.ErrInvalidKey)

		big := string(make([]byte, 100))
		require.ErrorIs(t, c.Set(ctx, "big", big), stampede.ErrValueTooLarge)
		_, err = c.Get(ctx, "big", newSource(big).load)
		require.ErrorIs(t, err, stampede.ErrValueTooLarge)
		require.False(t, m.Exists("stampede:{big}"), "nothing is written")
		require.False(t, m.Exists("stampede:{big}:lock"), "the lease is released")

		type unencodable struct{ C chan int }
		u := one[unencodable](t, m, stampede.WithNamespace("u"))
		require.ErrorContains(t, u.Set(ctx, "k", unencodable{}), "stampede: encode: json: unsupported type")
		_, err = u.Get(ctx, "k", func(context.Context, string) (unencodable, error) { return unencodable{}, nil })
		require.ErrorContains(t, err, "stampede: encode")
		require.False(t, m.Exists("u:{k}"))

		// Keys with braces, colons, NUL bytes and invalid UTF-8 are just keys.
		for _, key := range []string{"{a}", "}{", "a:b", "nul\x00", "\xff\xfe", "line\nbreak"} {
			v, err := c.Get(ctx, key, newSource("v:"+key).load)
			require.NoError(t, err, "%q", key)
			require.Equal(t, "v:"+key, v)
		}
	})
}

func TestNewValidatesOptions(t *testing.T) {
	m := redistest.Mini(t)
	client := redistest.Client(t, m)
	for name, opts := range map[string][]stampede.Option{
		"empty namespace":  {stampede.WithNamespace("")},
		"brace namespace":  {stampede.WithNamespace("a{b")},
		"zero TTL":         {stampede.WithTTL(0)},
		"jitter":           {stampede.WithJitter(1)},
		"negative TTL":     {stampede.WithTTL(-1)},
		"NaN beta":         {stampede.WithEarlyRefresh(nan())},
		"L1 size":          {stampede.WithL1(0, time.Second)},
		"lease":            {stampede.WithLeaseTTL(time.Millisecond)},
		"codec":            {stampede.WithCodec(nil)},
		"policy and opt":   {stampede.WithPolicy(func(string) stampede.Policy { return stampede.Policy{} }), stampede.WithStrategy(stampede.Singleflight)},
		"nil policy func":  {stampede.WithPolicy(nil)},
		"nil option":       {nil},
		"unknown strategy": {stampede.WithStrategy(7)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := stampede.New[string](client, opts...)
			require.Error(t, err)
			require.Contains(t, err.Error(), "stampede:")
		})
	}
	_, err := stampede.New[string](nil)
	require.Error(t, err)
}

func nan() float64 { z := 0.0; return z / z }

func TestCloseStopsEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := stampede.New[string](redistest.Client(t, redistest.Mini(t)))
		require.NoError(t, err)
		src := newSource("v")
		started, release := src.hold()
		defer release()
		got := make(chan error)
		go func() {
			_, err := c.Get(ctx, "k", src.load)
			got <- err
		}()
		<-started
		require.NoError(t, c.Close())
		require.ErrorIs(t, <-got, stampede.ErrClosed)
		require.NoError(t, c.Close(), "Close is idempotent")

		_, err = c.Get(ctx, "k", src.load)
		require.ErrorIs(t, err, stampede.ErrClosed)
		require.ErrorIs(t, c.Set(ctx, "k", "v"), stampede.ErrClosed)
		require.ErrorIs(t, c.Invalidate(ctx, "k"), stampede.ErrClosed)
		require.ErrorIs(t, c.Delete(ctx, "k"), stampede.ErrClosed)
		_, err = c.Refresh(ctx, "k", src.load)
		require.ErrorIs(t, err, stampede.ErrClosed)
		// synctest fails the test if any goroutine of the cache is still running.
	})
}

func TestErrorsAreWrapped(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &stampede.PanicError{Value: errDatabase})
	require.ErrorIs(t, err, errDatabase)
	require.True(t, errors.Is(fmt.Errorf("x: %w", stampede.ErrNotFound), stampede.ErrNotFound))
}

// TestCircuitBreaker: once Redis has failed 5 times in a row, reads skip it (no more Redis
// errors, no waiting for its timeout) and load instead, once per key; one read tries it again
// every 250 ms, and the first that works closes the circuit.
func TestCircuitBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithTTL(time.Hour))
		m.SetError("ERR the server is on fire")
		for i := range 10 {
			_, err := c.Get(ctx, fmt.Sprint("k", i), newSource("v").load)
			require.NoError(t, err)
		}
		failed := c.Stats().RedisErrors
		require.GreaterOrEqual(t, failed, uint64(5))
		require.LessOrEqual(t, failed, uint64(6), "the circuit opened after 5 failures in a row")

		time.Sleep(250 * time.Millisecond)
		_, err := c.Get(ctx, "probe", newSource("v").load)
		require.NoError(t, err)
		require.Equal(t, failed+1, c.Stats().RedisErrors, "one probe, which failed")

		m.SetError("")
		time.Sleep(250 * time.Millisecond)
		src := newSource("v")
		_, err = c.Get(ctx, "back", src.load)
		require.NoError(t, err)
		_, err = c.Get(ctx, "back", src.load, stampede.WithoutL1())
		require.NoError(t, err)
		require.EqualValues(t, 1, src.calls.Load(), "Redis is used again: the second read is a hit")
		require.EqualValues(t, 1, c.Stats().L2Hits)
	})
}

// counters returns the counters of s, without the L1's gauges.
func counters(s stampede.Stats) stampede.Stats {
	s.L1Entries, s.L1Bytes = 0, 0
	return s
}
