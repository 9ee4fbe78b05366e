// Package flight runs at most one call per key at a time and shares each call's value with the
// callers that were waiting when it started.
//
// Unlike golang.org/x/sync/singleflight, a caller never receives the value of a call that was
// already running when it arrived: it boards the next call, which starts as soon as the running
// one ends, and carries every caller that boarded meanwhile. So the value a caller gets was
// computed after it asked (a read of Redis or of the source that began after the caller's own
// start), which is what makes a Get that starts after a write return the write, while a burst of
// callers still costs at most two calls, one running and one boarding.
package flight

import (
	"context"
	"hash/maphash"
	"sync"
)

// A Group coalesces calls per key. Its zero value is not usable; create one with New.
type Group[T any] struct {
	seed   maphash.Seed
	spawn  func(func()) bool // starts a goroutine; false once the owner is closing
	closed T                 // the value of calls that could not start because of closing
	shards [shards]shard[T]
	lines  sync.Pool // of *Line[T]
}

const shards = 64

type shard[T any] struct {
	mu sync.Mutex
	m  map[string]*Line[T] // guarded by mu; a key is present while one of its calls runs
}

// A Line is a key with a call running: the caller that got it from Lead drives that call, and
// passes it to End.
type Line[T any] struct {
	key  string
	s    *shard[T]
	next *call[T] // guarded by s.mu: the call boarding, nil if nobody waits
}

type call[T any] struct {
	fn   func() T // its first passenger's
	done chan struct{}
	val  T
}

// New returns a Group that starts goroutines with spawn, and gives closed to callers whose call
// could not start because spawn refused.
func New[T any](spawn func(func()) bool, closed T) *Group[T] {
	g := &Group[T]{seed: maphash.MakeSeed(), spawn: spawn, closed: closed}
	for i := range g.shards {
		g.shards[i].m = make(map[string]*Line[T])
	}
	g.lines.New = func() any { return new(Line[T]) }
	return g
}

func (g *Group[T]) shard(key string) *shard[T] {
	return &g.shards[maphash.String(g.seed, key)&(shards-1)]
}

// Lead makes the caller the driver of a call of key if none is running: it runs the call on its
// own goroutine and then passes the Line to End. It reports false if a call is running; then the
// caller boards the next call with Board.
//
// Lead and End take no allocation: the uncontended path of a hot read stays free of garbage.
func (g *Group[T]) Lead(key string) (*Line[T], bool) {
	s := g.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, running := s.m[key]; running {
		return nil, false
	}
	l := g.lines.Get().(*Line[T])
	l.key, l.s = key, s
	s.m[key] = l
	return l, true
}

// End ends the call that Lead started. If callers boarded meanwhile, their call starts on a new
// goroutine.
func (g *Group[T]) End(l *Line[T]) {
	if next := g.pass(l); next != nil {
		g.start(l, next)
		return
	}
	l.key, l.s = "", nil
	g.lines.Put(l)
}

// pass ends the running call of l and returns the call that boarded meanwhile, which now runs,
// or nil if there is none and the key is free.
func (g *Group[T]) pass(l *Line[T]) *call[T] {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	next := l.next
	l.next = nil
	if next == nil {
		delete(l.s.m, l.key)
	}
	return next
}

// start runs c, and the calls that board after it, on a new goroutine.
func (g *Group[T]) start(l *Line[T], c *call[T]) {
	if g.spawn(func() { g.drive(l, c) }) {
		return
	}
	// Closing: nobody may start a call; every call that boards from now ends the same way.
	for c != nil {
		c.val = g.closed
		close(c.done)
		c = g.pass(l)
	}
}

// drive runs c and then each call that boarded while the previous one ran, until none did.
func (g *Group[T]) drive(l *Line[T], c *call[T]) {
	for c != nil {
		c.val = c.fn()
		close(c.done)
		c = g.pass(l)
	}
}

// Board returns the value of the next call of key: the running call's successor, which starts
// when the running call ends and runs fn if this caller is the first to board it. If no call is
// running, the call starts at once: on this goroutine if inline, else on a new one. A caller
// whose ctx ends first returns ctx.Err(); the call goes on for the others.
func (g *Group[T]) Board(ctx context.Context, key string, fn func() T, inline bool) (T, error) {
	s := g.shard(key)
	s.mu.Lock()
	l, running := s.m[key]
	if running {
		if l.next == nil {
			l.next = &call[T]{fn: fn, done: make(chan struct{})}
		}
		c := l.next
		s.mu.Unlock()
		return wait(ctx, c)
	}
	l = &Line[T]{key: key, s: s}
	s.m[key] = l
	s.mu.Unlock()
	if inline {
		v := fn()
		if next := g.pass(l); next != nil {
			g.start(l, next)
		}
		return v, nil
	}
	c := &call[T]{fn: fn, done: make(chan struct{})}
	g.start(l, c)
	return wait(ctx, c)
}

func wait[T any](ctx context.Context, c *call[T]) (T, error) {
	select {
	case <-c.done:
		return c.val, nil
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
