package stampede_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// spanKey is the ctx key under which spans of a fakeTracer carry their name, so that a test
// can see which span a ctx is in.
type spanKey struct{}

// tracedSpan is a span a fakeTracer began.
type tracedSpan struct {
	stampede.Span
	parent  string // the span of the ctx Start was given: "request", or a span's op
	err     error  // what its end was called with
	ended   bool
	endedAt time.Time
}

// fakeTracer records the spans it is asked to begin and end.
type fakeTracer struct {
	mu    sync.Mutex
	spans []*tracedSpan

	startCtx func(context.Context, string) context.Context // the ctx Start returns, if set
}

func (f *fakeTracer) Start(ctx context.Context, s stampede.Span) (context.Context, func(error)) {
	parent, _ := ctx.Value(spanKey{}).(string)
	sp := &tracedSpan{Span: s, parent: parent}
	f.mu.Lock()
	f.spans = append(f.spans, sp)
	f.mu.Unlock()
	name := s.Op.String()
	if f.startCtx != nil {
		ctx = f.startCtx(ctx, name)
	} else {
		ctx = context.WithValue(ctx, spanKey{}, name)
	}
	return ctx, func(err error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if sp.ended {
			panic("a span ended twice")
		}
		sp.err, sp.ended, sp.endedAt = err, true, time.Now()
	}
}

// take returns the spans so far as "op<parent", each ended, and forgets them.
func (f *fakeTracer) take(t *testing.T) ([]string, []*tracedSpan) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var names []string
	for _, s := range f.spans {
		require.True(t, s.ended, "span %s ended", s.Op)
		names = append(names, s.Op.String()+"<"+s.parent)
	}
	spans := f.spans
	f.spans = nil
	return names, spans
}

// request is the ctx of a caller in a trace: its span is "request".
var request = context.WithValue(context.Background(), spanKey{}, "request")

// TestTracerMiss: a miss traces the GET that missed, the lease script, the load and the fill,
// each in the caller's span; the loader runs in the load's span. Hits, from the L1 or from
// Redis, call the tracer not at all.
func TestTracerMiss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		tr := &fakeTracer{}
		caches := fleet[string](t, m, 2, stampede.WithTracer(tr))
		var loadedIn any
		load := func(ctx context.Context, key string) (string, error) {
			loadedIn = ctx.Value(spanKey{})
			return "v", nil
		}
		before := time.Now()
		v, err := caches[0].Get(request, "k", load)
		require.NoError(t, err)
		require.Equal(t, "v", v)
		names, spans := tr.take(t)
		require.Equal(t, []string{"redis.get<request", "redis.lease<request", "load<request", "redis.fill<request"}, names)
		require.Equal(t, "load", loadedIn, "the loader's ctx carries the load's span")
		for _, s := range spans {
			require.Equal(t, "k", s.Key)
			require.NoError(t, s.err)
		}
		require.False(t, spans[0].Start.Before(before), "the GET's span began when the GET did")
		require.False(t, spans[0].Start.IsZero())

		for _, c := range caches { // an L1 hit; an L2 hit, then an L1 hit
			for range 2 {
				_, err = c.Get(request, "k", load)
				require.NoError(t, err)
			}
		}
		noL1 := one[string](t, m, stampede.WithTracer(tr), stampede.WithoutL1())
		_, err = noL1.Get(request, "k", load) // an L2 hit
		require.NoError(t, err)
		names, _ = tr.take(t)
		require.Empty(t, names, "hits are not traced")
	})
}

// TestTracerLoadCtxKeepsItsCancellation: the ctx a tracer returns lends the loader its values
// only. A tracer that returns a ctx already cancelled cannot cancel the load, and the load still
// ends at the load timeout, not with its caller.
func TestTracerLoadCtxKeepsItsCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &fakeTracer{startCtx: func(_ context.Context, name string) context.Context {
			ctx, cancel := context.WithCancel(context.WithValue(context.Background(), spanKey{}, name))
			cancel()
			return ctx
		}}
		c := one[string](t, redistest.Mini(t), stampede.WithTracer(tr), stampede.WithLoadTimeout(time.Second))
		type other struct{}
		caller, cancel := context.WithCancel(context.WithValue(request, other{}, "caller's"))
		started := make(chan struct{})
		load := func(ctx context.Context, key string) (string, error) {
			require.Equal(t, "load", ctx.Value(spanKey{}), "the tracer's values come first")
			require.Equal(t, "caller's", ctx.Value(other{}), "the caller's values are kept")
			require.NoError(t, ctx.Err(), "the tracer's cancelled ctx does not cancel the load")
			close(started)
			<-ctx.Done()
			return "", ctx.Err()
		}
		start := time.Now()
		done := make(chan error)
		go func() {
			_, err := c.Get(caller, "k", load)
			done <- err
		}()
		<-started
		cancel() // the caller gives up; the load goes on until the load timeout
		require.ErrorIs(t, <-done, context.Canceled)
		time.Sleep(time.Second)
		synctest.Wait()
		_, spans := tr.take(t)
		var loadSpan *tracedSpan
		for _, s := range spans {
			if s.Op == stampede.SpanLoad {
				loadSpan = s
			}
		}
		require.NotNil(t, loadSpan)
		require.ErrorIs(t, loadSpan.err, stampede.ErrLoadTimeout)
		require.Equal(t, time.Second, loadSpan.endedAt.Sub(start), "the load ended at the load timeout")
	})
}

// TestTracerLeaseWait: an instance that waits for another's load traces the wait, with its
// looks at Redis in it, and does not load; the holder traces its load.
func TestTracerLeaseWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		holderTr, waiterTr := &fakeTracer{}, &fakeTracer{}
		holder := one[string](t, m, stampede.WithTracer(holderTr))
		waiter := one[string](t, m, stampede.WithTracer(waiterTr))
		src := newSource("v")
		started, release := src.hold()
		var wg sync.WaitGroup
		wg.Go(func() {
			v, err := holder.Get(request, "k", src.load)
			require.NoError(t, err)
			require.Equal(t, "v", v)
		})
		<-started
		wg.Go(func() {
			v, err := waiter.Get(request, "k", src.load)
			require.NoError(t, err)
			require.Equal(t, "v", v)
		})
		synctest.Wait() // the waiter waits
		time.Sleep(time.Second)
		release()
		wg.Wait()
		require.EqualValues(t, 1, src.calls.Load())

		names, _ := holderTr.take(t)
		require.Equal(t, []string{"redis.get<request", "redis.lease<request", "load<request", "redis.fill<request"}, names)
		names, spans := waiterTr.take(t)
		require.Equal(t, []string{"redis.get<request", "redis.lease<request", "lease_wait<request"}, names[:3])
		require.Greater(t, len(names), 3, "the waiter looked again while it waited")
		for _, name := range names[3:] {
			require.Equal(t, "redis.lease<lease_wait", name, "the looks during the wait are in its span")
		}
		for _, s := range spans {
			require.NoError(t, s.err, s.Op.String())
		}
	})
}

// TestTracerLeaseWaitTimeout: a wait that times out ends its span with ErrWaitTimeout.
func TestTracerLeaseWaitTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		tr := &fakeTracer{}
		c := one[string](t, m, stampede.WithTracer(tr), stampede.WithLoadTimeout(time.Second),
			stampede.WithLeaseTTL(time.Second))
		// A lease another instance holds, and keeps, for an hour.
		m.Set("stampede:{k}:lock", fmt.Sprintf("other:1|%d|0", time.Now().Add(time.Hour).UnixMilli()))
		_, err := c.Get(request, "k", newSource("v").load)
		require.ErrorIs(t, err, stampede.ErrWaitTimeout)
		names, spans := tr.take(t)
		require.Contains(t, names, "lease_wait<request")
		require.NotContains(t, names, "load<request")
		for _, s := range spans {
			if s.Op == stampede.SpanLeaseWait {
				require.ErrorIs(t, s.err, stampede.ErrWaitTimeout)
			}
		}
	})
}

// TestTracerStaleServe: a stale value served traces an instant with its age, and the
// background refresh it starts traces its lease, load and fill in the caller's span.
func TestTracerStaleServe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &fakeTracer{}
		c := one[string](t, redistest.Mini(t), stampede.WithTracer(tr), stampede.WithJitter(0),
			stampede.WithTTL(time.Second), stampede.WithStaleWhileRevalidate(time.Minute))
		src := newSource("v")
		_, err := c.Get(request, "k", src.load)
		require.NoError(t, err)
		tr.take(t)
		time.Sleep(3 * time.Second)
		v, err := c.Get(request, "k", src.load)
		require.NoError(t, err)
		require.Equal(t, "v", v)
		synctest.Wait() // the refresh
		names, spans := tr.take(t)
		require.Equal(t, []string{"stale_serve<request", "redis.lease<request", "load<request", "redis.fill<request"}, names)
		require.Equal(t, 2*time.Second, spans[0].Age)
		require.EqualValues(t, 2, src.calls.Load())
	})
}

// TestTracerRedisDown: a GET that fails is traced with its error, and the load that follows.
func TestTracerRedisDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		tr := &fakeTracer{}
		c := one[string](t, m, stampede.WithTracer(tr))
		m.SetError("ERR down")
		v, err := c.Get(request, "k", newSource("v").load)
		require.NoError(t, err)
		require.Equal(t, "v", v)
		names, spans := tr.take(t)
		require.Equal(t, []string{"redis.get<request", "load<request"}, names)
		require.ErrorContains(t, spans[0].err, "down")
		require.NoError(t, spans[1].err)
	})
}

// panickyTracer panics in Start, or in the end functions it returns.
type panickyTracer struct{ inEnd bool }

func (p panickyTracer) Start(ctx context.Context, s stampede.Span) (context.Context, func(error)) {
	if !p.inEnd {
		panic(fmt.Sprintf("tracer: boom in %s", s.Op))
	}
	return ctx, func(error) { panic("tracer: boom in end") }
}

// TestTracerPanicsAreLoggedOnceAndIgnored: a Tracer that panics, in Start or in an end function,
// on the caller's goroutine or the cache's, is logged once and otherwise ignored.
func TestTracerPanicsAreLoggedOnceAndIgnored(t *testing.T) {
	for _, inEnd := range []bool{false, true} {
		t.Run(fmt.Sprintf("inEnd=%v", inEnd), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				log := &records{}
				c := one[string](t, redistest.Mini(t), stampede.WithTracer(panickyTracer{inEnd}),
					stampede.WithLogger(slog.New(log)), stampede.WithTTL(time.Second),
					stampede.WithStaleWhileRevalidate(time.Minute))
				src := newSource("v")
				for range 3 {
					for j := range 5 {
						v, err := c.Get(request, fmt.Sprint("k", j), src.load)
						require.NoError(t, err)
						require.Equal(t, "v", v)
					}
					time.Sleep(2 * time.Second) // stale: a stale serve, a refresh
					synctest.Wait()
				}
				require.EqualValues(t, 15, src.calls.Load(), "5 misses, then twice 5 refreshes of stale values")
				require.Equal(t, 1, log.count("Tracer panicked"), "logged once")
				require.Equal(t, 1, log.count("tracer: boom"))
			})
		})
	}
}

// nilTracer returns nothing from Start.
type nilTracer struct{}

func (nilTracer) Start(context.Context, stampede.Span) (context.Context, func(error)) {
	return nil, nil
}

// TestTracerNil: WithTracer(nil) traces nothing, and a Tracer may return a nil ctx and end.
func TestTracerNil(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		for i, tr := range []stampede.Tracer{nil, nilTracer{}} {
			c := one[string](t, m, stampede.WithTracer(tr))
			load := func(ctx context.Context, key string) (string, error) {
				require.Equal(t, "request", ctx.Value(spanKey{}))
				return "v", nil
			}
			v, err := c.Get(request, fmt.Sprint("k", i), load)
			require.NoError(t, err)
			require.Equal(t, "v", v)
		}
	})
}

func TestSpanOpString(t *testing.T) {
	require.Equal(t, "redis.fill", stampede.SpanRedisFill.String())
	require.Equal(t, "SpanOp(0)", stampede.SpanOp(0).String())
	require.Equal(t, "SpanOp(99)", stampede.SpanOp(99).String())
}
