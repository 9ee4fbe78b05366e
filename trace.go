package stampede

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// A Tracer puts what a miss does into the caller's trace: the cache calls Start when a span
// begins, with the caller's ctx, and the function Start returns when the span ends. An adapter
// such as package github.com/stampede-cache/stampede/contrib/otel turns these into spans of
// a tracing library; set one with WithTracer.
//
// Hits are never traced. A fresh hit, from the L1 or from Redis, does not call the Tracer at
// all: only misses, loads, waits for a load and stale values served do (see SpanOp). A Tracer
// must be safe for concurrent use and should return quickly. Like Hooks, a Tracer (or an end
// function it returned) that panics does not crash the process: the panic is recovered, logged
// once at Error (to WithLogger's logger, or slog.Default() when none was given), and ignored.
type Tracer interface {
	// Start begins the span s under ctx and returns the ctx of the span's work and the
	// function that ends the span, with the error the work ended with (nil on success). It may
	// return a nil end, which ends nothing, and a nil ctx, which stands for ctx.
	//
	// The returned ctx lends its values to the work of the span, never its cancellation or
	// deadline, which stay those of ctx: a loader receives the values of Start's ctx (so that
	// the spans of its own database calls nest under the load's) under the cache's load
	// timeout, detached from the caller's cancellation as always (see Loader).
	Start(ctx context.Context, s Span) (context.Context, func(err error))
}

// A Span describes what a span given to Tracer.Start stands for.
type Span struct {
	// Op is what the cache does in the span.
	Op SpanOp
	// Key is the key the span is about.
	Key string
	// Start is when the span began, when that was before Start was called (a Redis GET is
	// traced only once it returned a miss); zero means now.
	Start time.Time
	// Age is, for SpanStaleServe, how long past its fresh lifetime the value served was.
	Age time.Duration
}

// A SpanOp says what a Span stands for, and when its end function is called.
type SpanOp uint8

const (
	// SpanLoad is a call of a loader, which receives the ctx Start returned. It ends when the
	// loader returns, or when the cache gives up on it: with nil, ErrNotFound (possibly
	// wrapped, which is no failure), the loader's error, a *PanicError, an ErrLoadTimeout, or
	// the ctx's error of a load cancelled by its caller (Refresh) or Close.
	SpanLoad SpanOp = iota + 1
	// SpanLeaseWait is a wait for the load of another instance that holds the key's lease,
	// from the first time this instance found the lease held until the wait ends: a message
	// or a look at Redis brought the value (nil), a failure of that load (its error, or nil
	// when a stale value is served instead), or the lease free (nil; this instance then takes
	// it and loads, in spans of its own; or Redis failed, and it loads alone), or the wait
	// timed out (ErrWaitTimeout). The looks at Redis during the wait (SpanRedisLease) are
	// begun in the ctx Start returned.
	SpanLeaseWait
	// SpanStaleServe is an instant: a stale value was returned to the caller, Age past its
	// fresh lifetime, while a refresh runs (stale-while-revalidate) or because a load failed
	// (stale-if-error). Its end function is called at once, with nil.
	SpanStaleServe
	// SpanRedisGet is the GET of the key's value by a Get that then found nothing to serve
	// (a miss, a value to refresh before serving, or a failed GET, with its error). Its Start
	// is when the GET began; its end function is called at once. A GET that hits is not traced.
	SpanRedisGet
	// SpanRedisLease is a run of the lease script: take the key's lease, or learn who holds
	// it or that the value changed. It ends with the script's error, or nil.
	SpanRedisLease
	// SpanRedisFill is a run of the fill script: the fenced write of a loaded value, which
	// notifies the waiters. It ends with the script's error, or nil (also when the fence
	// refused the write).
	SpanRedisFill
)

var spanOpNames = [...]string{SpanLoad: "load", SpanLeaseWait: "lease_wait", SpanStaleServe: "stale_serve",
	SpanRedisGet: "redis.get", SpanRedisLease: "redis.lease", SpanRedisFill: "redis.fill"}

// String returns the name of op: load, lease_wait, stale_serve, redis.get, redis.lease or
// redis.fill.
func (op SpanOp) String() string {
	if int(op) < len(spanOpNames) && spanOpNames[op] != "" {
		return spanOpNames[op]
	}
	return fmt.Sprintf("SpanOp(%d)", uint8(op))
}

// WithTracer sets the Tracer that traces misses, loads, lease waits and stale values served, in
// the caller's trace. Default: none; nil sets none.
func WithTracer(t Tracer) Option {
	return option(func(c *config) { c.tracer = t })
}

// tracer calls a cache's Tracer through userCall: a Tracer that panics is logged once, at
// Error, and its panics are ignored from then on, as a hook's are. A nil *tracer traces
// nothing.
type tracer struct {
	t        Tracer
	log      *slog.Logger // the loud logger: the user's, or slog.Default()
	panicked atomic.Bool
}

func newTracer(t Tracer, log *slog.Logger) *tracer {
	if t == nil {
		return nil
	}
	return &tracer{t: t, log: log}
}

func (t *tracer) call(f func()) {
	if p := userCall(f); p != nil && !t.panicked.Swap(true) {
		t.log.Error("stampede: the Tracer panicked; it stays installed and its panics are ignored",
			"panic", fmt.Sprint(p.Value), "stack", string(p.Stack))
	}
}

// spanEnd ends a span that tracer.start began; its zero value ends nothing.
type spanEnd struct {
	t   *tracer
	end func(error)
}

// open reports whether e is of a span that was begun: it is not the zero spanEnd.
func (e spanEnd) open() bool { return e.t != nil }

func (e spanEnd) done(err error) {
	if e.end != nil {
		e.t.call(func() { e.end(err) })
	}
}

// start begins the span s under ctx. It returns the ctx of the span's work: ctx itself, or ctx
// with the values of the ctx the Tracer returned (its cancellation stays ctx's).
func (t *tracer) start(ctx context.Context, s Span) (context.Context, spanEnd) {
	if t == nil {
		return ctx, spanEnd{}
	}
	var sctx context.Context
	var end func(error)
	t.call(func() { sctx, end = t.t.Start(ctx, s) })
	if sctx != nil && sctx != ctx {
		ctx = withValuesOf{ctx, sctx}
	}
	return ctx, spanEnd{t, end}
}

// instant traces an event that has no duration (or that is over): s is begun and ended at
// once with err.
func (t *tracer) instant(ctx context.Context, s Span, err error) {
	if t != nil {
		_, e := t.start(ctx, s)
		e.done(err)
	}
}

// withValuesOf is a context with the cancellation and deadline of its Context, and the values
// of values, then of its Context: the ctx a Tracer returned carries the span to the work, but
// must not change when the work ends (a load stays detached from its caller's cancellation).
type withValuesOf struct {
	context.Context
	values context.Context
}

func (c withValuesOf) Value(key any) any {
	if v := c.values.Value(key); v != nil {
		return v
	}
	return c.Context.Value(key)
}

// servedStaleCtx is servedStale, traced in the caller's ctx.
func (c *Cache[V]) servedStaleCtx(ctx context.Context, key string, freshUntil, now int64) {
	c.servedStale(key, freshUntil, now)
	c.tracer.instant(ctx, Span{Op: SpanStaleServe, Key: key, Age: time.Duration(now - freshUntil)}, nil)
}
