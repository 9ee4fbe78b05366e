package stampede_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stampede-cache/stampede"
	"github.com/stampede-cache/stampede/internal/redistest"
)

// batchSource is a BatchLoader that counts its calls and the keys it loaded, and can be held
// until released, as a database query would be slow.
type batchSource struct {
	mu      sync.Mutex
	calls   int
	loaded  map[string]int // how many times each key was loaded
	sizes   []int          // of each call
	missing map[string]bool
	extra   map[string]string // returned although not asked for
	err     error
	panics  bool
	version string
	gate    chan struct{} // when set, loads wait for it to close
	started chan []string // when set, each call sends its keys when it starts
}

func newBatchSource() *batchSource {
	return &batchSource{loaded: make(map[string]int), missing: make(map[string]bool), version: "v1"}
}

func (s *batchSource) load(ctx context.Context, keys []string) (map[string]string, error) {
	s.mu.Lock()
	s.calls++
	s.sizes = append(s.sizes, len(keys))
	for _, k := range keys {
		s.loaded[k]++
	}
	gate, started, err, panics, version := s.gate, s.started, s.err, s.panics, s.version
	s.mu.Unlock()
	if started != nil {
		started <- slices.Clone(keys)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if panics {
		panic("boom")
	}
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(keys))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if !s.missing[k] {
			m[k] = version + ":" + k
		}
	}
	for k, v := range s.extra {
		m[k] = v
	}
	return m, nil
}

func (s *batchSource) stats() (calls int, loaded map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, copyCounts(s.loaded)
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func keysN(prefix string, n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return keys
}

// TestGetManyBasics: L1, Redis, loads, not-found, duplicates, chunks, empty input.
func TestGetManyBasics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithMaxBatch(4))
		src := newBatchSource()
		src.missing["k002"] = true

		got, err := c.GetMany(ctx, nil, src.load)
		require.NoError(t, err)
		require.Empty(t, got)
		require.Zero(t, src.calls, "no keys, no I/O")

		keys := append(keysN("k", 10), "k001", "k003") // duplicates are read once
		got, err = c.GetMany(ctx, keys, src.load)
		require.NoError(t, err)
		require.Len(t, got, 9, "k002 does not exist")
		require.Equal(t, "v1:k007", got["k007"])
		calls, loaded := src.stats()
		require.Equal(t, 3, calls, "10 keys in chunks of 4")
		for _, n := range loaded {
			require.Equal(t, 1, n)
		}
		require.LessOrEqual(t, slices.Max(src.sizes), 4)
		require.True(t, m.Exists("stampede:{k002}"), "not-found is cached")

		// Everything is cached now: the L1 and Redis serve it, and the not-found too.
		got, err = c.GetMany(ctx, keys, src.load)
		require.NoError(t, err)
		require.Len(t, got, 9)
		calls, _ = src.stats()
		require.Equal(t, 3, calls)
		st := c.Stats()
		require.EqualValues(t, 10, st.Misses)
		require.EqualValues(t, 10, st.L1Hits)

		// Another instance reads them from Redis.
		d := one[string](t, m)
		got, err = d.GetMany(ctx, keys, src.load)
		require.NoError(t, err)
		require.Len(t, got, 9)
		require.EqualValues(t, 10, d.Stats().L2Hits)
		calls, _ = src.stats()
		require.Equal(t, 3, calls)

		// Get sees what GetMany wrote, and GetMany what Get wrote.
		v, err := d.Get(ctx, "k005", one1(src.load))
		require.NoError(t, err)
		require.Equal(t, "v1:k005", v)
		_, err = c.Get(ctx, "solo", func(context.Context, string) (string, error) { return "by Get", nil })
		require.NoError(t, err)
		got, err = d.GetMany(ctx, []string{"solo"}, src.load)
		require.NoError(t, err)
		require.Equal(t, "by Get", got["solo"])
	})
}

// one1 is a Loader through a BatchLoader.
func one1(load stampede.BatchLoader[string]) stampede.Loader[string] {
	return func(ctx context.Context, key string) (string, error) {
		m, err := load(ctx, []string{key})
		if err != nil {
			return "", err
		}
		v, ok := m[key]
		if !ok {
			return "", stampede.ErrNotFound
		}
		return v, nil
	}
}

// TestGetManyBadInput: invalid keys fail alone, extra keys are ignored and logged, a panic fails
// the batch and releases every lease, errors fail every key, a nil loader and Close.
func TestGetManyBadInput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		var logs bytes.Buffer
		var mu sync.Mutex
		log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
		c := one[string](t, m, stampede.WithLogger(log), stampede.WithFailureBackoff(0, 0))
		src := newBatchSource()
		src.extra = map[string]string{"intruder": "x", "other": "y"}

		got, err := c.GetMany(ctx, []string{"a", "", strings.Repeat("x", stampede.MaxKeyLen+1), "b"}, src.load)
		var be *stampede.BatchError
		require.ErrorAs(t, err, &be)
		require.Len(t, be.Errs, 2)
		require.ErrorIs(t, be.Errs[""], stampede.ErrInvalidKey)
		require.ErrorIs(t, err, stampede.ErrInvalidKey)
		require.Equal(t, map[string]string{"a": "v1:a", "b": "v1:b"}, got)
		require.False(t, m.Exists("stampede:{intruder}"), "keys not asked for are ignored")
		mu.Lock()
		require.Contains(t, logs.String(), "ignored=2")
		mu.Unlock()

		_, err = c.GetMany(ctx, []string{"a"}, nil)
		require.ErrorIs(t, err, stampede.ErrNilLoader)

		// A panic fails every key of the batch with a *PanicError, and releases their leases.
		src.extra = nil
		src.panics = true
		got, err = c.GetMany(ctx, []string{"p1", "p2", "a"}, src.load)
		require.Equal(t, map[string]string{"a": "v1:a"}, got)
		var pe *stampede.PanicError
		require.ErrorAs(t, err, &pe)
		require.ErrorAs(t, err, &be)
		require.Len(t, be.Errs, 2)
		require.False(t, m.Exists("stampede:{p1}:lock"))
		require.False(t, m.Exists("stampede:{p2}:lock"))

		// An error fails every key it was asked for.
		src.panics = false
		src.err = errDatabase
		_, err = c.GetMany(ctx, []string{"e1", "e2"}, src.load)
		require.ErrorIs(t, err, errDatabase)
		require.ErrorAs(t, err, &be)
		require.Len(t, be.Errs, 2)
		require.False(t, m.Exists("stampede:{e1}:lock"))

		require.NoError(t, c.Close())
		_, err = c.GetMany(ctx, []string{"a"}, src.load)
		require.ErrorIs(t, err, stampede.ErrClosed)
		require.ErrorIs(t, c.SetMany(ctx, map[string]string{"a": "x"}), stampede.ErrClosed)
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestGetManyFleet: 4 instances ask for overlapping keys at once; each key is loaded once
// fleet-wide, each instance makes one loader call for the keys it won, and the keys another
// instance holds are awaited by notification.
func TestGetManyFleet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 4)
		src := newBatchSource()
		started, release := make(chan []string, 16), make(chan struct{})
		src.started, src.gate = started, release
		keys := keysN("k", 20)

		// The first instance wins every key and holds it.
		var wg sync.WaitGroup
		results := make([]map[string]string, 4)
		errs := make([]error, 4)
		wg.Go(func() { results[0], errs[0] = caches[0].GetMany(ctx, keys, src.load) })
		<-started
		synctest.Wait()
		// The others ask for overlapping subsets, and wait for its notification.
		for i := 1; i < 4; i++ {
			wg.Go(func() { results[i], errs[i] = caches[i].GetMany(ctx, keys[i*3:], src.load) })
		}
		synctest.Wait()
		close(release)
		wg.Wait()
		for i := range 4 {
			require.NoError(t, errs[i])
			require.Len(t, results[i], len(keys)-3*i)
		}
		calls, loaded := src.stats()
		require.Equal(t, 1, calls, "one loader call fleet-wide")
		for _, k := range keys {
			require.Equal(t, 1, loaded[k], k)
		}
		require.Positive(t, caches[3].Stats().LeaseWaits)
	})
}

// TestGetManyJoinsFlights: keys a Get is loading on this instance are not loaded again; the
// batch loads only the others.
func TestGetManyJoinsFlights(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m)
		single := newSource("by Get")
		started, release := single.hold()
		done := make(chan struct{})
		go func() {
			v, err := c.Get(ctx, "k1", single.load)
			require.NoError(t, err)
			require.Equal(t, "by Get", v)
			close(done)
		}()
		<-started
		src := newBatchSource()
		var got map[string]string
		var err error
		batchDone := make(chan struct{})
		go func() {
			got, err = c.GetMany(ctx, []string{"k1", "k2", "k3"}, src.load)
			close(batchDone)
		}()
		time.Sleep(10 * time.Millisecond) // the batch window
		synctest.Wait()
		calls, loaded := src.stats()
		require.Equal(t, 1, calls)
		require.Zero(t, loaded["k1"], "k1 is in flight: not loaded again")
		release()
		<-done
		<-batchDone
		require.NoError(t, err)
		require.Equal(t, map[string]string{"k1": "by Get", "k2": "v1:k2", "k3": "v1:k3"}, got)
		require.EqualValues(t, 1, single.calls.Load())
		_, loaded = src.stats()
		require.Zero(t, loaded["k1"])
	})
}

// TestGetManyStaleAndFences: stale-while-revalidate serves at once and refreshes the due keys
// in one merged call; stale-if-error serves the old value when the batch fails; a Delete during
// the load fences the fill out; an InvalidateAll during the load refuses it.
func TestGetManyStaleAndFences(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithTTL(time.Second), stampede.WithJitter(0), stampede.WithEarlyRefresh(0),
			stampede.WithStaleWhileRevalidate(10*time.Second), stampede.WithoutL1(),
			stampede.WithRefreshBatch(20*time.Millisecond, 100))
		src := newBatchSource()
		keys := keysN("k", 5)
		_, err := c.GetMany(ctx, keys, src.load)
		require.NoError(t, err)

		time.Sleep(1500 * time.Millisecond)
		src.mu.Lock()
		src.version = "v2"
		src.mu.Unlock()
		start := time.Now()
		got, err := c.GetMany(ctx, keys, src.load)
		require.NoError(t, err)
		require.Zero(t, time.Since(start), "stale values are served at once")
		require.Equal(t, "v1:k000", got["k000"])
		time.Sleep(30 * time.Millisecond)
		synctest.Wait()
		calls, _ := src.stats()
		require.Equal(t, 2, calls, "the 5 refreshes merged into one call")
		got, err = c.GetMany(ctx, keys, src.load)
		require.NoError(t, err)
		require.Equal(t, "v2:k004", got["k004"])
		require.EqualValues(t, 5, c.Stats().EarlyRefreshes)
	})
}

// TestGetManyStaleIfError: a failed batch serves the stale values it may, and fails the others.
func TestGetManyStaleIfError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithTTL(time.Second), stampede.WithJitter(0), stampede.WithEarlyRefresh(0),
			stampede.WithStaleIfError(time.Minute))
		src := newBatchSource()
		_, err := c.GetMany(ctx, []string{"a", "b"}, src.load)
		require.NoError(t, err)
		time.Sleep(2 * time.Second)
		src.err = errDatabase
		got, err := c.GetMany(ctx, []string{"a", "b", "new"}, src.load)
		require.Equal(t, map[string]string{"a": "v1:a", "b": "v1:b"}, got)
		var be *stampede.BatchError
		require.ErrorAs(t, err, &be)
		require.Equal(t, []string{"new"}, mapKeys(be.Errs))
		require.EqualValues(t, 2, c.Stats().StaleServed)
		// The back-off: the next call shares the error without loading.
		calls, _ := src.stats()
		_, err = c.GetMany(ctx, []string{"new"}, src.load)
		require.ErrorIs(t, err, errDatabase)
		calls2, _ := src.stats()
		require.Equal(t, calls, calls2)
	})
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestGetManyFenced: a Delete while the batch loads fences its fill out; an InvalidateAll while
// it loads refuses it; SetTTL applies to every key of the call.
func TestGetManyFenced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m)
		src := newBatchSource()
		started, release := make(chan []string, 4), make(chan struct{})
		src.started, src.gate = started, release
		done := make(chan struct{})
		go func() {
			got, err := c.GetMany(ctx, []string{"a", "b"}, src.load)
			require.NoError(t, err)
			require.Len(t, got, 2, "the callers get what the load returned")
			close(done)
		}()
		<-started
		require.NoError(t, c.Delete(ctx, "a"))
		close(release)
		<-done
		require.False(t, m.Exists("stampede:{a}"), "fenced out by the Delete")
		require.True(t, m.Exists("stampede:{b}"))
		require.EqualValues(t, 1, c.Stats().FencedLoads)

		// InvalidateAll while loading: nothing is written.
		src = newBatchSource()
		started, release = make(chan []string, 4), make(chan struct{})
		src.started, src.gate = started, release
		done = make(chan struct{})
		go func() {
			_, err := c.GetMany(ctx, []string{"x", "y"}, src.load)
			require.NoError(t, err)
			close(done)
		}()
		<-started
		time.Sleep(time.Millisecond)
		require.NoError(t, c.InvalidateAll(ctx))
		synctest.Wait()
		close(release)
		<-done
		require.False(t, m.Exists("stampede:{x}"))
		require.False(t, m.Exists("stampede:{x}:lock"), "the lease is released")

		// SetTTL sets the TTL of every key of the call.
		ttl := func(ctx context.Context, keys []string) (map[string]string, error) {
			stampede.SetTTL(ctx, 5*time.Second)
			return map[string]string{keys[0]: "v", keys[1]: "w"}, nil
		}
		_, err := c.GetMany(ctx, []string{"t1", "t2"}, ttl)
		require.NoError(t, err)
		require.LessOrEqual(t, m.TTL("stampede:{t1}"), 5*time.Second)
		require.LessOrEqual(t, m.TTL("stampede:{t2}"), 5*time.Second)
	})
}

// TestGetManyStuckLoader: a BatchLoader that ignores its ctx is abandoned at the load timeout;
// every key fails with ErrLoadTimeout and its lease is released.
func TestGetManyStuckLoader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m, stampede.WithLoadTimeout(time.Second))
		stuck := make(chan struct{})
		t.Cleanup(func() { close(stuck) })
		start := time.Now()
		_, err := c.GetMany(ctx, []string{"a", "b"}, func(context.Context, []string) (map[string]string, error) {
			<-stuck
			return nil, nil
		})
		require.ErrorIs(t, err, stampede.ErrLoadTimeout)
		require.Equal(t, time.Second+2*time.Millisecond, time.Since(start), "the batch window and the load timeout bound it")
		require.False(t, m.Exists("stampede:{a}:lock"))
	})
}

// TestGetManyCallerCancelled: a caller whose ctx ends gets ctx.Err(); the load goes on and fills.
func TestGetManyCallerCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		c := one[string](t, m)
		src := newBatchSource()
		started, release := make(chan []string, 4), make(chan struct{})
		src.started, src.gate = started, release
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error)
		go func() {
			_, err := c.GetMany(cctx, []string{"a", "b"}, src.load)
			done <- err
		}()
		<-started
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
		close(release)
		synctest.Wait()
		require.True(t, m.Exists("stampede:{a}"), "the load went on for the others")
	})
}

// TestBatchWrites: SetMany, InvalidateMany and DeleteMany are seen by another instance's L1.
func TestBatchWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := redistest.Mini(t)
		caches := fleet[string](t, m, 2)
		a, b := caches[0], caches[1]
		src := newBatchSource()
		keys := []string{"a", "b", "c"}
		_, err := b.GetMany(ctx, keys, src.load) // b keeps them in its L1
		require.NoError(t, err)

		require.NoError(t, a.SetMany(ctx, map[string]string{"a": "A", "b": "B", "c": "C"}))
		afterWindow() // the evictions reach b's L1
		got, err := b.GetMany(ctx, keys, src.load)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"a": "A", "b": "B", "c": "C"}, got)
		got, err = a.GetMany(ctx, keys, src.load)
		require.NoError(t, err)
		require.Equal(t, "A", got["a"], "read-your-writes")

		err = a.SetMany(ctx, map[string]string{"": "x", "d": "D"})
		require.ErrorIs(t, err, stampede.ErrInvalidKey)
		v, err := b.Get(ctx, "d", one1(src.load))
		require.NoError(t, err)
		require.Equal(t, "D", v)

		// Invalidate: served stale while one refresh per key replaces them.
		require.NoError(t, a.InvalidateMany(ctx, []string{"a", "b", "b"}))
		afterWindow() // the evictions reach b's L1
		got, err = b.GetMany(ctx, keys, src.load)
		require.NoError(t, err)
		require.Equal(t, "A", got["a"], "served while refreshed")
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		got, err = b.GetMany(ctx, keys, src.load)
		require.NoError(t, err)
		require.Equal(t, "v1:a", got["a"])
		require.Equal(t, "C", got["c"])

		// Delete: the next read loads.
		require.NoError(t, a.DeleteMany(ctx, []string{"c", "d"}))
		afterWindow() // the evictions reach b's L1
		require.False(t, m.Exists("stampede:{c}"))
		got, err = b.GetMany(ctx, []string{"c", "d"}, src.load)
		require.NoError(t, err)
		require.Equal(t, map[string]string{"c": "v1:c", "d": "v1:d"}, got)

		err = a.DeleteMany(ctx, []string{""})
		require.ErrorIs(t, err, stampede.ErrInvalidKey)
		require.NoError(t, a.DeleteMany(ctx, nil))
		require.NoError(t, a.SetMany(ctx, nil))
	})
}

// TestGetManyOneLoadPerInstance: the keys that 8 concurrent GetMany calls of one instance win
// share BatchLoader calls, in chunks of WithMaxBatch; with WithBatchWindow(0), each loads its own.
func TestGetManyOneLoadPerInstance(t *testing.T) {
	for _, tt := range []struct {
		window time.Duration
		calls  int
	}{{2 * time.Millisecond, 2}, {0, 8}} {
		t.Run(tt.window.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := redistest.Mini(t)
				c := one[string](t, m, stampede.WithBatchWindow(tt.window), stampede.WithMaxBatch(50))
				src := newBatchSource()
				keys := keysN("k", 80)
				var wg sync.WaitGroup
				for g := range 8 {
					wg.Go(func() {
						got, err := c.GetMany(ctx, keys[g*10:g*10+10], src.load)
						require.NoError(t, err)
						require.Len(t, got, 10)
					})
				}
				wg.Wait()
				calls, loaded := src.stats()
				require.Equal(t, tt.calls, calls, "80 keys won by 8 calls")
				require.Len(t, loaded, 80)
			})
		})
	}
}
