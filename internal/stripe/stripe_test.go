package stripe

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCountersSumOverGoroutines(t *testing.T) {
	c := New(3)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for range 1000 {
				c.Add(g % 3)
			}
		})
	}
	wg.Wait()
	require.Equal(t, uint64(6000), c.Load(0))
	require.Equal(t, uint64(5000), c.Load(1))
	require.Equal(t, uint64(5000), c.Load(2))
}

func TestAddDoesNotAllocate(t *testing.T) {
	c := New(1)
	require.Zero(t, testing.AllocsPerRun(100, func() { c.Add(0) }))
}

func BenchmarkCounters(b *testing.B) {
	c := New(4)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Add(1)
		}
	})
}

// BenchmarkSharedAtomic is the naive reference: one counter all goroutines increment.
func BenchmarkSharedAtomic(b *testing.B) {
	var n atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Add(1)
		}
	})
}
