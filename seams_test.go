package stampede_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// The seams: user code that panics, loaders that ignore their ctx, callers that cancel. None of
// them may crash the process or hold a key on other instances.

// touchy is a value whose JSON encoding panics while panicking is set.
type touchy struct{ N int }

var panicking atomic.Bool

func (t touchy) MarshalJSON() ([]byte, error) {
	if panicking.Load() {
		panic("MarshalJSON: boom")
	}
	return json.Marshal(struct{ N int }{t.N})
}

// records is a slog.Handler that keeps what is logged.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r.mu.Lock()
	r.msgs = append(r.msgs, b.String())
	r.mu.Unlock()
	return nil
}

func (r *records) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// TestCodecPanicOnTheCachesGoroutines: a value whose MarshalJSON panics during a background
// refresh (on the cache's own goroutine) and during a fill that other instances wait for does
// not crash the process. It fails the load with a *PanicError, reported like a loader panic,
// and releases the lease, so that the waiters hear of it instead of waiting it out.
func TestCodecPanicOnTheCachesGoroutines(t *testing.T) {
	defer panicking.Store(false)
	synctest.Test(t, func(t *testing.T) {
		var loadErrs []error
		var mu sync.Mutex
		hooks := stampede.Hooks{OnLoad: func(_ string, _ time.Duration, err error) {
			mu.Lock()
			loadErrs = append(loadErrs, err)
			mu.Unlock()
		}}
		caches := fleet[touchy](t, redistest.Mini(t), 2, stampede.WithoutL1(), stampede.WithTTL(time.Second),
			stampede.WithStaleWhileRevalidate(time.Minute), stampede.WithHooks(hooks))
		load := func(context.Context, string) (touchy, error) { return touchy{N: 1}, nil }
		_, err := caches[0].Get(ctx, "k", load)
		require.NoError(t, err)

		// A background refresh encodes on the cache's goroutine.
		panicking.Store(true)
		time.Sleep(2 * time.Second) // stale now: served, and refreshed in the background
		v, err := caches[0].Get(ctx, "k", load)
		require.NoError(t, err)
		require.Equal(t, 1, v.N)
		synctest.Wait()
		require.EqualValues(t, 1, caches[0].Stats().CodecErrors)
		require.EqualValues(t, 1, caches[0].Stats().LoadErrors)
		mu.Lock()
		require.Len(t, loadErrs, 2)
		var pe *stampede.PanicError
		require.ErrorAs(t, loadErrs[1], &pe, "OnLoad hears of the panic")
		mu.Unlock()

		// A fill that another instance waits for: the waiter hears that the load failed.
		require.NoError(t, caches[0].Delete(ctx, "k"))
		slow := func(context.Context, string) (touchy, error) {
			time.Sleep(100 * time.Millisecond)
			return touchy{N: 2}, nil
		}
		start := time.Now()
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i, c := range caches {
			wg.Go(func() { _, errs[i] = c.Get(ctx, "k", slow) })
		}
		wg.Wait()
		for _, err := range errs {
			require.ErrorContains(t, err, "MarshalJSON: boom")
		}
		require.Less(t, time.Since(start), time.Second, "the waiter was told, not left to the lease TTL")
	})
}

// TestHookPanicsAreLoggedOnceAndIgnored: a hook that panics, on the caller's goroutine or the
// cache's, is logged once and otherwise ignored.
func TestHookPanicsAreLoggedOnceAndIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := &records{}
		boom := func() { panic("hook: boom") }
		hooks := stampede.Hooks{
			OnLoad:         func(string, time.Duration, error) { boom() },
			OnEarlyRefresh: func(string) { boom() },
			OnStaleServed:  func(string, time.Duration) { boom() },
			OnHotKey:       func(string, float64) { boom() },
		}
		c := one[string](t, redistest.Mini(t), stampede.WithHooks(hooks), stampede.WithLogger(slog.New(log)),
			stampede.WithTTL(time.Second), stampede.WithStaleWhileRevalidate(time.Minute),
			stampede.WithHotKeys(stampede.HotKeys{Threshold: 1, SampleRate: 1}))
		src := newSource("v")
		for range 3 {
			for range 50 {
				v, err := c.Get(ctx, "k", src.load)
				require.NoError(t, err)
				require.Equal(t, "v", v)
			}
			time.Sleep(2 * time.Second) // stale: a refresh, a stale serve, a hot-key window
			synctest.Wait()
		}
		require.Greater(t, src.calls.Load(), int64(1), "refreshes ran despite their hooks' panics")
		for _, hook := range []string{"OnLoad", "OnEarlyRefresh", "OnStaleServed", "OnHotKey"} {
			require.Equal(t, 1, log.count("hook="+hook), "%s's panic is logged once", hook)
		}
	})
}

// TestStuckLoaderReleasesTheKey: a loader that ignores its ctx holds its key no longer than the
// load timeout. Its callers get ErrLoadTimeout; another instance, waiting, loads the key itself
// within the load timeout and a lease TTL; Close does not wait for the stuck loader.
func TestStuckLoaderReleasesTheKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const loadTimeout, leaseTTL = 300 * time.Millisecond, 200 * time.Millisecond
		m := redistest.Mini(t)
		stuck := make(chan struct{})
		defer close(stuck)
		a, err := stampede.New[string](redistest.Client(t, m), stampede.WithLoadTimeout(loadTimeout), stampede.WithLeaseTTL(leaseTTL))
		require.NoError(t, err)
		b := one[string](t, m, stampede.WithLoadTimeout(loadTimeout), stampede.WithLeaseTTL(leaseTTL))

		started := make(chan struct{})
		var stuckErr error
		stuckDone := make(chan struct{})
		go func() {
			defer close(stuckDone)
			_, stuckErr = a.Get(ctx, "k", func(context.Context, string) (string, error) {
				close(started)
				<-stuck // ignores its ctx
				return "late", nil
			})
		}()
		<-started
		begin := time.Now()
		v, err := b.Get(ctx, "k", func(context.Context, string) (string, error) { return "good", nil })
		require.NoError(t, err)
		require.Equal(t, "good", v)
		require.LessOrEqual(t, time.Since(begin), loadTimeout+leaseTTL)
		<-stuckDone
		require.ErrorIs(t, stuckErr, stampede.ErrLoadTimeout)
		require.ErrorIs(t, stuckErr, context.DeadlineExceeded)

		// Another stuck load, then Close: it returns within its documented bound.
		go func() {
			_, _ = a.Get(ctx, "k2", func(context.Context, string) (string, error) { <-stuck; return "", nil })
		}()
		synctest.Wait()
		begin = time.Now()
		require.NoError(t, a.Close())
		require.LessOrEqual(t, time.Since(begin), time.Second)
	})
}

// TestCancelledLoadIsNotAFailure: a Refresh whose caller gives up during the load releases the
// lease as released, not failed: no instance backs off, and nobody else sees an error. The
// decision follows the contexts, not the loader's error, which a driver may wrap its own way.
func TestCancelledLoadIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 3)
		src := newSource("v1")
		for _, c := range caches {
			_, err := c.Get(ctx, "k", src.load)
			require.NoError(t, err)
		}
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err := caches[0].Refresh(cctx, "k", func(ctx context.Context, _ string) (string, error) {
			<-ctx.Done()
			return "", errors.New("driver: query canceled") // not context.Canceled
		})
		require.ErrorIs(t, err, context.DeadlineExceeded)
		synctest.Wait()
		for i, c := range caches {
			require.False(t, stampede.BackoffActive(c, "k"), "instance %d backs off", i)
			v, err := c.Get(ctx, "k", src.load)
			require.NoError(t, err, "instance %d", i)
			require.Equal(t, "v1", v)
		}
		require.Zero(t, caches[1].Stats().LoadErrors+caches[2].Stats().LoadErrors)
	})
}

// TestCloseDuringLoadIsNotAFailure: Close cancels its instance's loads; the instances waiting
// for them take the lease over and load, without an error or a back-off.
func TestCloseDuringLoadIsNotAFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		a, err := stampede.New[string](redistest.Client(t, m))
		require.NoError(t, err)
		b := one[string](t, m)
		started := make(chan struct{})
		go func() {
			_, err := a.Get(ctx, "k", func(ctx context.Context, _ string) (string, error) {
				close(started)
				<-ctx.Done()
				return "", fmt.Errorf("wrapped: %v", ctx.Err())
			})
			require.ErrorIs(t, err, stampede.ErrClosed)
		}()
		<-started
		done := make(chan error)
		go func() {
			_, err := b.Get(ctx, "k", func(context.Context, string) (string, error) { return "v", nil })
			done <- err
		}()
		synctest.Wait()
		require.NoError(t, a.Close())
		require.NoError(t, <-done)
		require.False(t, stampede.BackoffActive(b, "k"))
	})
}

// TestOwnFailureDoesNotDoubleTheBackoff: the instance whose load failed hears its own Failed
// message, which must not count as a second failure: the first back-off is 50 to 100 ms.
func TestOwnFailureDoesNotDoubleTheBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t))
		stampede.SetRand(c, func() float64 { return 0.999 })
		src := newSource("v")
		src.fail(errDatabase)
		_, err := c.Get(ctx, "k", src.load)
		require.ErrorIs(t, err, errDatabase)
		synctest.Wait()
		time.Sleep(100 * time.Millisecond)
		require.False(t, stampede.BackoffActive(c, "k"), "one failure, one back-off of under 100 ms")
	})
}

// TestFailureBackoffOff: WithFailureBackoff(0, 0) sends the next caller to the source.
func TestFailureBackoffOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := one[string](t, redistest.Mini(t), stampede.WithFailureBackoff(0, 0))
		src := newSource("v")
		src.fail(errDatabase)
		for range 3 {
			_, err := c.Get(ctx, "k", src.load)
			require.ErrorIs(t, err, errDatabase)
			synctest.Wait()
		}
		require.EqualValues(t, 3, src.calls.Load())
	})
}

// TestRefreshesForgetForeignHolders: a refresh that found another instance's lease is
// remembered until a message about the key comes, a failure or a release included.
func TestRefreshesForgetForeignHolders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		caches := fleet[string](t, redistest.Mini(t), 2, stampede.WithoutL1(), stampede.WithTTL(time.Second),
			stampede.WithStaleWhileRevalidate(time.Minute), stampede.WithFailureBackoff(0, 0))
		src := newSource("v")
		_, err := caches[0].Get(ctx, "k", src.load)
		require.NoError(t, err)
		time.Sleep(2 * time.Second)
		started, release := src.hold()
		src.fail(errDatabase)
		_, err = caches[0].Get(ctx, "k", src.load) // stale: refreshed by instance 0
		require.NoError(t, err)
		<-started
		_, err = caches[1].Get(ctx, "k", src.load) // stale: finds instance 0's lease
		require.NoError(t, err)
		synctest.Wait()
		require.Equal(t, 1, stampede.RefreshesBusy(caches[1]))
		release()
		synctest.Wait()
		require.Equal(t, 0, stampede.RefreshesBusy(caches[1]), "the Failed message ended it")
	})
}

// TestEncodeFailureIsVisible: a value the codec cannot encode fails the load, and it shows: in
// OnLoad's error, in Stats.LoadErrors and Stats.CodecErrors.
func TestEncodeFailureIsVisible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hookErr error
		c := one[chan int](t, redistest.Mini(t), stampede.WithHooks(stampede.Hooks{
			OnLoad: func(_ string, _ time.Duration, err error) { hookErr = err },
		}))
		_, err := c.Get(ctx, "k", func(context.Context, string) (chan int, error) { return make(chan int), nil })
		require.ErrorContains(t, err, "encode")
		require.ErrorContains(t, hookErr, "encode")
		require.EqualValues(t, 1, c.Stats().CodecErrors)
		require.EqualValues(t, 1, c.Stats().LoadErrors)
	})
}

// TestWaitTimeoutIsASentinel: a caller that gives up waiting for a lease that another
// instance keeps holding gets ErrWaitTimeout.
func TestWaitTimeoutIsASentinel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithLoadTimeout(100*time.Millisecond), stampede.WithLeaseTTL(100*time.Millisecond))
		stop := make(chan struct{})
		defer close(stop)
		go func() { // a holder elsewhere that keeps its lease
			for {
				m.Set("stampede:{k}:lock", "elsewhere")
				m.SetTTL("stampede:{k}:lock", time.Second)
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		synctest.Wait()
		_, err := c.Get(ctx, "k", newSource("v").load)
		require.ErrorIs(t, err, stampede.ErrWaitTimeout)
	})
}

// TestPanicErrorIsOneLine: the error text that reaches logs and other instances has no stack.
func TestPanicErrorIsOneLine(t *testing.T) {
	err := &stampede.PanicError{Value: "boom", Stack: []byte("goroutine 1 [running]:\nmain.main()\n")}
	require.Equal(t, "stampede: panic in user code: boom", err.Error())
}

// TestReplicaCannotBringBackAnOlderValue: an instance that replicates a key (here by its
// policy; the writer's does not) reads a replica that a write elsewhere did not touch, as an instance that
// does not think the key hot does not. Once the write's message has reached it, it neither
// serves that replica's older value nor keeps it in its L1.
func TestReplicaCannotBringBackAnOlderValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := append(fleet[string](t, m, 1, stampede.WithL1(100, time.Hour), stampede.WithReplicas(2)),
			fleet[string](t, m, 1, stampede.WithL1(100, time.Hour))...)
		src := newSource("v1")
		_, err := caches[0].Get(ctx, "k", src.load)
		require.NoError(t, err)
		synctest.Wait() // the replica that missed gets its copy
		for range 4 {   // both replicas hold v1
			_, err := caches[0].Get(ctx, "k", src.load, stampede.WithoutL1())
			require.NoError(t, err)
			synctest.Wait()
		}
		require.NoError(t, caches[1].Set(ctx, "k", "v2")) // no replicas in its policy
		afterWindow()
		for i := range 20 {
			v, err := caches[0].Get(ctx, "k", src.load)
			require.NoError(t, err)
			require.Equal(t, "v2", v, "read %d after the write", i)
		}
	})
}
