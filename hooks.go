package stampede

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// Hooks are optional callbacks for metrics and tracing. A nil field is skipped. Hooks run on the
// goroutine that observed the event, after the cache released its locks, and never on the path
// of a fresh L1 hit (a stale one calls OnStaleServed); they must be safe for concurrent use and
// should return quickly. A hook that panics does not crash the process: the panic is recovered,
// logged once per hook at Error (to WithLogger's logger, or slog.Default() when none was given),
// and ignored.
type Hooks struct {
	// OnLoad is called after every call of a loader, with its duration and error (nil on
	// success, ErrNotFound possibly wrapped, or a *PanicError).
	OnLoad func(key string, took time.Duration, err error)

	// OnLeaseWait is called when a caller that waited for another instance's load stops
	// waiting, with how long it waited.
	OnLeaseWait func(key string, waited time.Duration)

	// OnStaleServed is called when a stale value is returned, with its age past its fresh
	// lifetime: while a refresh runs (stale-while-revalidate) or because a load failed
	// (stale-if-error).
	OnStaleServed func(key string, age time.Duration)

	// OnEarlyRefresh is called when a background refresh of key starts.
	OnEarlyRefresh func(key string)

	// OnRedisError is called when a Redis call fails; op names the call ("get", "lease",
	// "fill", "subscribe", ...) and key is empty for calls that concern no single key.
	OnRedisError func(op, key string, err error)

	// OnHotKey is called once per detection window for each key whose estimated request rate,
	// in requests per second, crossed the hot-key threshold.
	OnHotKey func(key string, rate float64)

	// OnReplicated is called when automatic replication (HotKeys.Replicas) starts serving a hot
	// key from replicas, and with 0 when the key cooled and stops being replicated.
	OnReplicated func(key string, replicas int)
}

// hookID names a hook, for the once-per-hook report of its panics.
type hookID int

const (
	hookOnLoad hookID = iota
	hookOnLeaseWait
	hookOnStaleServed
	hookOnEarlyRefresh
	hookOnRedisError
	hookOnHotKey
	hookOnReplicated
	numHooks
)

var hookNames = [numHooks]string{"OnLoad", "OnLeaseWait", "OnStaleServed", "OnEarlyRefresh",
	"OnRedisError", "OnHotKey", "OnReplicated"}

// hooks calls a cache's Hooks through userCall: a hook that panics is logged once, at Error,
// and its panics are ignored from then on, so that a metrics bug never takes a process down.
type hooks struct {
	Hooks
	log      *slog.Logger // the loud logger: the user's, or slog.Default()
	panicked [numHooks]atomic.Bool
}

func (h *hooks) call(id hookID, f func()) {
	if p := userCall(f); p != nil && !h.panicked[id].Swap(true) {
		h.log.Error("stampede: a hook panicked; it stays installed and its panics are ignored",
			"hook", hookNames[id], "panic", fmt.Sprint(p.Value), "stack", string(p.Stack))
	}
}

func (h *hooks) load(key string, took time.Duration, err error) {
	if h.OnLoad != nil {
		h.call(hookOnLoad, func() { h.OnLoad(key, took, err) })
	}
}

func (h *hooks) leaseWait(key string, waited time.Duration) {
	if h.OnLeaseWait != nil {
		h.call(hookOnLeaseWait, func() { h.OnLeaseWait(key, waited) })
	}
}

func (h *hooks) staleServed(key string, age time.Duration) {
	if h.OnStaleServed != nil {
		h.call(hookOnStaleServed, func() { h.OnStaleServed(key, age) })
	}
}

func (h *hooks) earlyRefresh(key string) {
	if h.OnEarlyRefresh != nil {
		h.call(hookOnEarlyRefresh, func() { h.OnEarlyRefresh(key) })
	}
}

func (h *hooks) redisError(op, key string, err error) {
	if h.OnRedisError != nil {
		h.call(hookOnRedisError, func() { h.OnRedisError(op, key, err) })
	}
}

func (h *hooks) hotKey(key string, rate float64) {
	if h.OnHotKey != nil {
		h.call(hookOnHotKey, func() { h.OnHotKey(key, rate) })
	}
}

func (h *hooks) replicated(key string, replicas int) {
	if h.OnReplicated != nil {
		h.call(hookOnReplicated, func() { h.OnReplicated(key, replicas) })
	}
}

// JoinHooks returns Hooks that call each of hooks, in order, for every event; nil fields are
// skipped. Use it to give a cache the hooks of a metrics adapter and your own.
func JoinHooks(hooks ...Hooks) Hooks {
	var j Hooks
	for _, h := range hooks {
		j.OnLoad = join3(j.OnLoad, h.OnLoad)
		j.OnLeaseWait = join2(j.OnLeaseWait, h.OnLeaseWait)
		j.OnStaleServed = join2(j.OnStaleServed, h.OnStaleServed)
		j.OnEarlyRefresh = join1(j.OnEarlyRefresh, h.OnEarlyRefresh)
		j.OnRedisError = join3(j.OnRedisError, h.OnRedisError)
		j.OnHotKey = join2(j.OnHotKey, h.OnHotKey)
		j.OnReplicated = join2(j.OnReplicated, h.OnReplicated)
	}
	return j
}

func join1[A any](f, g func(A)) func(A) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(a A) { f(a); g(a) }
}

func join2[A, B any](f, g func(A, B)) func(A, B) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(a A, b B) { f(a, b); g(a, b) }
}

func join3[A, B, C any](f, g func(A, B, C)) func(A, B, C) {
	if f == nil {
		return g
	}
	if g == nil {
		return f
	}
	return func(a A, b B, c C) { f(a, b, c); g(a, b, c) }
}
