// Package stampedetest gives unit tests a real [stampede.Cache] over an in-process Redis, so
// that code using the cache can be tested without a Redis server:
//
//	users := stampedetest.New[User](t) // closed, with its Redis, when the test ends
//
// The Redis is [miniredis], reached in memory (no port is opened), so the caches work inside a
// [testing/synctest] bubble as well as outside one. Create the caches inside the bubble: then
// everything follows the bubble's fake clock (the caches' TTLs and L1, and the expiry of the
// Redis's keys), and a test moves time forward with time.Sleep. Outside a bubble, the Redis's
// keys expire on the real clock, as on a real Redis.
//
// To test what happens across the instances of a service (one load fleet-wide for a stampede,
// a Delete on one instance evicting the key from the others' L1), [NewFleet] starts several
// caches on one Redis, each with its own Redis client as separate processes would have. To look
// into that Redis, or to lose it, start a [Server] and its caches with [NewOn].
//
// Every function here takes the test's testing.TB, fails the test (t.Fatalf) if it cannot do
// its work, and closes what it started when the test ends (t.Cleanup). Call them from the
// test's goroutine.
package stampedetest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/stampede-cache/stampede"
)

// New returns a cache over a Redis of its own, in process. The cache, its Redis client and the
// Redis are closed when the test ends.
func New[V any](t testing.TB, opts ...stampede.Option) *stampede.Cache[V] {
	t.Helper()
	return NewOn[V](t, NewServer(t), opts...)
}

// NewFleet returns n caches on one in-process Redis, as n instances of a service: each has its
// own Redis client and L1, and they share the Redis's values, leases and pub/sub channel (with
// the same options, the same namespace). They are closed, and then the Redis, when the test
// ends.
func NewFleet[V any](t testing.TB, n int, opts ...stampede.Option) []*stampede.Cache[V] {
	t.Helper()
	if n < 0 {
		t.Fatalf("stampedetest: NewFleet(%d): n must not be negative", n)
	}
	s := NewServer(t)
	caches := make([]*stampede.Cache[V], n)
	for i := range caches {
		caches[i] = NewOn[V](t, s, opts...)
	}
	return caches
}

// NewOn returns a cache on s, with a Redis client of its own. The cache and its client are
// closed when the test ends.
func NewOn[V any](t testing.TB, s *Server, opts ...stampede.Option) *stampede.Cache[V] {
	t.Helper()
	client := s.client(t)
	c, err := stampede.New[V](client, opts...)
	if err != nil {
		t.Fatalf("stampedetest: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("stampedetest: Close: %v", err)
		}
	})
	return c
}

// Server is an in-process Redis for the caches of one test. Its methods may be called from any
// goroutine.
type Server struct {
	t testing.TB
	m *miniredis.Miniredis

	mu     sync.Mutex
	closed bool
}

// NewServer starts an in-process Redis, closed when the test ends. Its keys expire as time
// passes (time.Now, or a synctest bubble's clock when it is started in one).
func NewServer(t testing.TB) *Server {
	t.Helper()
	m := miniredis.NewMiniRedis()
	m.ClockTTL(true)
	s := &Server{t: t, m: m}
	t.Cleanup(m.Close)
	return s
}

// Client returns a new go-redis client of s, closed when the test that started s ends: to look
// at what the caches stored, or to build a cache with stampede.New and a client of your own
// options. It connects in memory: its Addr is not an address to dial.
func (s *Server) Client() *redis.Client {
	return s.client(s.t)
}

// Miniredis returns the Redis itself, to inspect it (Keys, TTL, Get, ...) or to break it
// (SetError makes every command fail). Use [Server.Close], not its Close, to make it
// unreachable: miniredis restarts when a client reconnects.
//
// Its FastForward ages the Redis's keys alone, as if Redis dropped them early; it does not make
// the caches see their values as older, nor empty their L1. To move the caches' time, test in a
// synctest bubble and sleep.
func (s *Server) Miniredis() *miniredis.Miniredis {
	return s.m
}

// Close makes the Redis unreachable, as when its server or the network is lost: it breaks every
// open connection and refuses new ones until [Server.Restart]. The caches go on answering
// through their loaders (see stampede's documentation for what they do without Redis).
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.m.Close()
}

// Restart makes the Redis reachable again after [Server.Close], with the data it had, as a
// restart from a snapshot taken at Close would. Call Miniredis().FlushAll first for a Redis
// that comes back empty.
func (s *Server) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = false
}

// errClosed is what dialing a closed Server returns.
var errClosed = errors.New("stampedetest: the Redis server is closed (Server.Close)")

func (s *Server) dial(context.Context, string, string) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	return s.m.Dial()
}

// client returns a go-redis client of s, closed when t ends.
func (s *Server) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{
		// An IP address, and no maintenance notifications: go-redis resolves a host name to
		// classify the endpoint, which a synctest bubble forbids. Nothing dials it.
		Addr:                     "127.0.0.1:6379",
		Dialer:                   s.dial,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
		// Enough connections that no caller waits for one: go-redis waits on timers from a
		// process-wide pool, which a synctest bubble may not touch.
		PoolSize:              4096,
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { _ = c.Close() })
	return c
}
