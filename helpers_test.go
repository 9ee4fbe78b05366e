package stampede_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// fleet starts n caches on m, as n instances of a service, each with its own Redis client.
func fleet[V any](t *testing.T, m *miniredis.Miniredis, n int, opts ...stampede.Option) []*stampede.Cache[V] {
	t.Helper()
	caches := make([]*stampede.Cache[V], n)
	for i := range caches {
		c, err := stampede.New[V](redistest.Client(t, m), opts...)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, c.Close()) })
		caches[i] = c
	}
	return caches
}

// one starts a single cache on m.
func one[V any](t *testing.T, m *miniredis.Miniredis, opts ...stampede.Option) *stampede.Cache[V] {
	t.Helper()
	return fleet[V](t, m, 1, opts...)[0]
}

// source is a loader that counts its calls and can be held, as a database query would be slow.
type source struct {
	calls   atomic.Int64
	value   atomic.Value // string
	err     atomic.Pointer[error]
	latency time.Duration

	mu      sync.Mutex
	gate    chan struct{} // when set, loads wait for it to close
	started chan string   // when set, each load sends its key when it starts
}

func newSource(value string) *source {
	s := &source{}
	s.value.Store(value)
	return s
}

// load reads the source's value when it starts, as a query sees the rows of its snapshot, and
// then takes its time.
func (s *source) load(ctx context.Context, key string) (string, error) {
	s.calls.Add(1)
	value := s.value.Load().(string)
	s.mu.Lock()
	gate, started := s.gate, s.started
	s.mu.Unlock()
	if started != nil {
		started <- key
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if s.latency > 0 {
		time.Sleep(s.latency)
	}
	if err := s.err.Load(); err != nil {
		return "", *err
	}
	return value, nil
}

// hold makes the next loads wait until the returned function is called, and returns a channel
// that receives the key of each load as it starts.
func (s *source) hold() (started <-chan string, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gate, st := make(chan struct{}), make(chan string, 100)
	s.gate, s.started = gate, st
	return st, func() {
		s.mu.Lock()
		s.gate, s.started = nil, nil
		s.mu.Unlock()
		close(gate)
	}
}

func (s *source) fail(err error) { s.err.Store(&err) }

var errDatabase = errors.New("database is down")

// getAll runs Get of key from n goroutines spread over the caches, released together, and
// returns their values and errors once all are done.
func getAll(ctx context.Context, caches []*stampede.Cache[string], n int, key string, load stampede.Loader[string]) ([]string, []error) {
	values, errs := make([]string, n), make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			values[i], errs[i] = caches[i%len(caches)].Get(ctx, key, load)
		})
	}
	close(start)
	wg.Wait()
	return values, errs
}

// afterWindow lets the eviction window of the writes made so far end, in a synctest bubble, and
// their evictions reach every instance.
func afterWindow() {
	time.Sleep(stampede.DefaultEvictionWindow)
	synctest.Wait()
}
