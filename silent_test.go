package stampede_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// These tests need no Redis: they run a silent server of their own, or none, and belong to the
// unit tier. They use real sockets, so no testing/synctest.

const (
	// silentTimeout is the Redis timeout of the caches under test.
	silentTimeout = 250 * time.Millisecond
	// silentBound is how long any call of such a cache may take against a Redis that never
	// answers: its Redis timeout, with room for a loaded machine under -race, and well below
	// go-redis's own timeouts (3 s to read and write, 5 s to dial), which must not be what ends
	// a call.
	silentBound = 1500 * time.Millisecond
	// silentGiveUp is how long a call may run before the test stops waiting for it, so that a
	// call that hangs fails the test rather than the test binary.
	silentGiveUp = 10 * time.Second
)

// silentServer accepts every connection and reads and discards its bytes, forever, without
// ever answering: a Redis that is hung, or behind a network that drops its replies.
type silentServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu     sync.Mutex
	conns  []net.Conn // guarded by mu
	closed bool       // guarded by mu
}

// newSilentServer starts a silent server on a free port of 127.0.0.1. It is closed when the
// test ends.
func newSilentServer(t *testing.T) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &silentServer{ln: ln}
	s.wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				_ = conn.Close()
				return
			}
			s.conns = append(s.conns, conn)
			s.mu.Unlock()
			s.wg.Go(func() { _, _ = io.Copy(io.Discard, conn) })
		}
	})
	t.Cleanup(s.Close)
	return s
}

func (s *silentServer) Addr() string { return s.ln.Addr().String() }

// accepted returns how many connections the server accepted.
func (s *silentServer) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Close stops the server and closes every connection it accepted, which ends whatever still
// waits on them; it is idempotent.
func (s *silentServer) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := s.conns
	s.mu.Unlock()
	_ = s.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	s.wg.Wait()
}

// bounded runs f, logs how long it took, and reports a failure if it took silentBound or
// longer. A call still running after silentGiveUp fails the test at once: the server is closed
// first, so that what the call waits for ends, and the cleanups do not hang as well.
func bounded(t *testing.T, s *silentServer, name string, f func()) {
	t.Helper()
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(silentGiveUp):
		s.Close()
		t.Fatalf("%s against a silent Redis: still running after %v (bound %v)", name, silentGiveUp, silentBound)
	}
	took := time.Since(start)
	t.Logf("%s against a silent Redis took %v (bound %v)", name, took.Round(time.Millisecond), silentBound)
	assert.Less(t, took, silentBound, "%s against a silent Redis must be bounded by the cache's Redis timeout (%v), "+
		"not by go-redis's own timeouts", name, silentTimeout)
}

// newBounded creates a cache over client, timing New, and closes it when the test ends if the
// test did not.
func newBounded(t *testing.T, s *silentServer, client redis.UniversalClient, opts ...stampede.Option) (*stampede.Cache[string], error) {
	t.Helper()
	opts = append([]stampede.Option{
		stampede.WithRedisTimeout(silentTimeout),
		stampede.WithNamespace(redistest.Namespace(t)),
	}, opts...)
	var c *stampede.Cache[string]
	var err error
	bounded(t, s, "New", func() { c, err = stampede.New[string](client, opts...) })
	if c != nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, err
}

// checkCallsBounded runs Get, Set, Delete and Close of c, whose Redis is silent, and checks
// that each returns within the bound, Get with the loader's value and the writes with an error.
func checkCallsBounded(t *testing.T, s *silentServer, c *stampede.Cache[string]) {
	t.Helper()
	ctx := context.Background() // no deadline of the caller's: the cache's own must bound each call
	var loads atomic.Int32
	load := func(context.Context, string) (string, error) { loads.Add(1); return "v", nil }
	var v string
	var getErr, setErr, delErr, closeErr error
	bounded(t, s, "Get", func() { v, getErr = c.Get(ctx, "k", load) })
	if assert.NoError(t, getErr, "Get answers through the loader when Redis does not answer") {
		assert.Equal(t, "v", v)
		assert.Equal(t, int32(1), loads.Load(), "one load")
	}
	bounded(t, s, "Set", func() { setErr = c.Set(ctx, "k", "w") })
	assert.Error(t, setErr, "Set cannot succeed when Redis does not answer")
	bounded(t, s, "Delete", func() { delErr = c.Delete(ctx, "k") })
	assert.Error(t, delErr, "Delete cannot succeed when Redis does not answer")
	bounded(t, s, "Close", func() { closeErr = c.Close() })
	assert.NoError(t, closeErr)
}

// TestSilentRedisCallsBounded: every call of a cache is bounded by its Redis timeout, even
// against a Redis that accepts connections and never answers, when the client lets contexts
// bound its calls (ContextTimeoutEnabled) and keeps go-redis's own timeouts at their defaults
// (3 s to read, 5 s to dial). Get answers through the loader; Set and Delete fail; Close stops
// every goroutine of the cache.
func TestSilentRedisCallsBounded(t *testing.T) {
	s := newSilentServer(t)
	client := redis.NewClient(&redis.Options{Addr: s.Addr(), ContextTimeoutEnabled: true})
	t.Cleanup(func() { _ = client.Close() })
	ignore := goleak.IgnoreCurrent()

	c, err := newBounded(t, s, client)
	require.NoError(t, err, "New succeeds when Redis does not answer: waiters poll until a subscription succeeds")
	require.NotNil(t, c)
	require.Eventually(t, func() bool { return s.accepted() > 0 }, time.Second, time.Millisecond,
		"the cache reached the silent server")
	checkCallsBounded(t, s, c)

	require.NoError(t, client.Close())
	s.Close()
	goleak.VerifyNone(t, ignore)
}

// TestNoContextTimeoutWarnsAndBounds: a client built without ContextTimeoutEnabled, whose calls
// go-redis bounds by its own read and dial timeouts (3 s, 5 s) rather than by their contexts, is accepted with a
// warning that names the option, and the cache still bounds each of its calls by its Redis
// timeout.
func TestNoContextTimeoutWarnsAndBounds(t *testing.T) {
	s := newSilentServer(t)
	client := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = client.Close() })
	logs := &captureHandler{store: &captured{}}
	ignore := goleak.IgnoreCurrent()

	c, err := newBounded(t, s, client, stampede.WithLogger(slog.New(logs)))
	require.NoError(t, err, "New warns about the client, and does not refuse it")
	require.NotNil(t, c)
	logs.assertWarning(t, "ContextTimeoutEnabled")
	checkCallsBounded(t, s, c)

	require.NoError(t, client.Close())
	s.Close()
	goleak.VerifyNone(t, ignore)
}

// TestNoContextTimeoutClusterClientBounded: New over a ClusterClient built without
// ContextTimeoutEnabled, whose seed node never answers, returns within the bound, with an error
// or with a cache; a cache comes with the warning that names the option.
func TestNoContextTimeoutClusterClientBounded(t *testing.T) {
	s := newSilentServer(t)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{s.Addr()}})
	t.Cleanup(func() { _ = client.Close() })
	logs := &captureHandler{store: &captured{}}

	c, err := newBounded(t, s, client, stampede.WithLogger(slog.New(logs)))
	if err != nil {
		t.Logf("New refused the cluster: %v", err)
		require.Nil(t, c)
		return
	}
	require.NotNil(t, c)
	logs.assertWarning(t, "ContextTimeoutEnabled")
	start := time.Now()
	_ = c.Close()
	t.Logf("Close took %v (not asserted)", time.Since(start).Round(time.Millisecond))
}

// TestRingRefused: a Ring cannot carry the cache's subscription (go-redis picks a Ring's shard by
// channel, and the cache subscribes before it knows one), so New refuses it with an error, of
// one shard as of several, and does not panic.
func TestRingRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		addrs map[string]string
	}{
		{"two shards", map[string]string{"a": "127.0.0.1:6379", "b": "127.0.0.1:6380"}},
		{"one shard", map[string]string{"a": "127.0.0.1:6379"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ring := redis.NewRing(&redis.RingOptions{Addrs: tc.addrs})
			t.Cleanup(func() { _ = ring.Close() })
			var c *stampede.Cache[string]
			var err error
			require.NotPanics(t, func() {
				c, err = stampede.New[string](ring,
					stampede.WithRedisTimeout(silentTimeout), stampede.WithNamespace(redistest.Namespace(t)))
			}, "New must refuse a Ring, not panic")
			if c != nil {
				t.Cleanup(func() { _ = c.Close() })
			}
			require.Nil(t, c, "New refuses a Ring")
			require.Error(t, err, "New refuses a Ring")
			require.True(t, strings.HasPrefix(err.Error(), "stampede:"), "error %q starts with \"stampede:\"", err)
			require.Contains(t, err.Error(), "Ring", "the error names what is refused")
		})
	}
}

// captured holds the records of a captureHandler and of the handlers derived from it.
type captured struct {
	mu      sync.Mutex
	records []string // each: level, message and attributes, flattened
}

// captureHandler is a slog.Handler that keeps every record, as text.
type captureHandler struct {
	store *captured
	attrs []string // from WithAttrs, with their groups
	group string   // prefix of the next attributes' keys, from WithGroup
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	parts := append([]string{r.Level.String(), r.Message}, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		parts = append(parts, flatten(h.group, a))
		return true
	})
	h.store.mu.Lock()
	h.store.records = append(h.store.records, strings.Join(parts, " "))
	h.store.mu.Unlock()
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	d := *h
	d.attrs = append([]string(nil), h.attrs...)
	for _, a := range as {
		d.attrs = append(d.attrs, flatten(h.group, a))
	}
	return &d
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	d := *h
	d.group = h.group + name + "."
	return &d
}

// flatten writes a as key=value, its groups' attributes included.
func flatten(prefix string, a slog.Attr) string {
	v := a.Value.Resolve()
	if v.Kind() != slog.KindGroup {
		return fmt.Sprintf("%s%s=%v", prefix, a.Key, v.Any())
	}
	var parts []string
	for _, g := range v.Group() {
		parts = append(parts, flatten(prefix+a.Key+".", g))
	}
	return strings.Join(parts, " ")
}

// assertWarning checks that a record at level Warn or above mentions word, in its message or
// its attributes. It does not stop the test, which goes on to measure the calls.
func (h *captureHandler) assertWarning(t *testing.T, word string) {
	t.Helper()
	h.store.mu.Lock()
	defer h.store.mu.Unlock()
	for _, r := range h.store.records {
		level, _, _ := strings.Cut(r, " ")
		var l slog.Level
		if l.UnmarshalText([]byte(level)) == nil && l >= slog.LevelWarn && strings.Contains(r, word) {
			t.Logf("logged: %s", r)
			return
		}
	}
	assert.Failf(t, "no warning names "+word, "records logged: %q", h.store.records)
}
