package hotkey

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestZipfAccuracy feeds 10 million requests over a million keys, Zipf(1.1) distributed, in
// ten windows (1 million requests a second), and reports keys over 5,000 requests/s: every one
// of the true top 10 is reported in every window, and no key under half the threshold ever is.
func TestZipfAccuracy(t *testing.T) {
	if raceEnabled {
		t.Skip("one goroutine: the race detector has nothing to check, and takes 20 s")
	}
	const (
		keys      = 1_000_000
		requests  = 10_000_000
		windows   = 10
		perWindow = requests / windows
		threshold = 5000 // requests per window of a second
	)
	r := rand.New(rand.NewPCG(1, 1))
	zipf := rand.NewZipf(r, 1.1, 1, keys-1)
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprint("user:", i)
	}
	d := New(16, 16, r.Uint32)
	var n uint64 // requests numbered as a cache numbers its Gets, for Sampled
	for w := range windows {
		truth := make(map[string]int)
		for i := range perWindow {
			k := names[zipf.Uint64()]
			truth[k]++
			if w%2 == 0 {
				d.Observe(k) // sampled at random
			} else if n++; d.Sampled(n + uint64(i%3)) {
				d.Count(k) // sampled by number (three interleaved counters, as stripes are)
			}
		}
		reported := map[string]uint64{}
		for _, e := range d.Rotate() {
			if e.Count >= threshold {
				reported[e.Key] = e.Count
			}
		}
		for i := range 10 {
			require.Contains(t, reported, names[i], "window %d: top key %d (%d requests) not reported", w, i, truth[names[i]])
		}
		for k, n := range reported {
			require.GreaterOrEqual(t, truth[k], threshold/2,
				"window %d: %s reported at %d but had %d requests", w, k, n, truth[k])
		}
		if w == 0 {
			t.Logf("window 0: %d keys over the threshold; top key %d requests, estimated %d", len(reported), truth[names[0]], reported[names[0]])
		}
	}
}

func TestRotateStartsANewWindow(t *testing.T) {
	d := New(4, 1, rand.Uint32)
	for range 100 {
		d.Observe("a")
	}
	for range 50 {
		d.Observe("b")
	}
	require.Equal(t, []Entry{{"a", 100}, {"b", 50}}, d.Rotate())
	require.Empty(t, d.Rotate())
	d.Observe("b")
	require.Equal(t, []Entry{{"b", 1}}, d.Rotate())
}

func TestTableKeepsTheLargest(t *testing.T) {
	d := New(2, 1, rand.Uint32)
	for i, n := range []int{5, 30, 20, 10} {
		for range n {
			d.Observe(fmt.Sprint(i))
		}
	}
	require.Equal(t, []Entry{{"1", 30}, {"2", 20}}, d.Rotate())
}

func TestObserveIsConcurrent(t *testing.T) {
	d := New(8, 1, rand.Uint32)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 10_000 {
				d.Observe(fmt.Sprint(i % (g + 1)))
			}
		})
	}
	wg.Wait()
	top := d.Rotate()
	require.Equal(t, "0", top[0].Key)
	// Goroutine g asks for key "0" in one request of g+1: 10,000 * (1 + 1/2 + ... + 1/8).
	require.InDelta(t, 27_179, float64(top[0].Count), 4)
}

func TestSampledIsOneInRate(t *testing.T) {
	d := New(16, 32, rand.Uint32)
	hits := 0
	for n := range uint64(1 << 20) {
		if d.Sampled(n) {
			hits++
		}
	}
	require.InDelta(t, 1<<20/32, hits, 2)
	// A caller cycling through 32 keys still samples all of them.
	seen := map[uint64]bool{}
	for n := range uint64(1 << 16) {
		if d.Sampled(n) {
			seen[n%32] = true
		}
	}
	require.Len(t, seen, 32)
}

func TestObserveDoesNotAllocate(t *testing.T) {
	d := New(8, 16, rand.Uint32)
	require.Zero(t, testing.AllocsPerRun(1000, func() { d.Observe("user:42") }))
}

func BenchmarkObserve(b *testing.B) {
	d := New(16, 16, rand.Uint32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			d.Observe("user:42")
		}
	})
}
