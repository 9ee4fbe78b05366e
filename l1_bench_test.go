package stampede

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/stampede-cache/stampede/internal/coarse"
	"github.com/stampede-cache/stampede/internal/envelope"
)

// heapInUse returns the bytes of the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

const memEntries = 1_000_000

// value100 returns a distinct 100-byte value.
func value100(i int) []byte {
	v := make([]byte, 100)
	copy(v, fmt.Sprint("value-", i))
	return v
}

// BenchmarkL1Memory reports the heap per entry of an L1 holding a million 100-byte values, and
// of otter alone holding the same keys and values (the target: at most 1.3 times otter's).
func BenchmarkL1Memory(b *testing.B) {
	keys := make([]string, memEntries)
	for i := range keys {
		keys[i] = fmt.Sprint("user:", i)
	}
	b.Run("otter", func(b *testing.B) {
		for b.Loop() {
			before := heapInUse()
			o := otter.Must(&otter.Options[string, []byte]{MaximumSize: memEntries,
				ExpiryCalculator: otter.ExpiryWriting[string, []byte](time.Hour)})
			for i, k := range keys {
				o.Set(k, value100(i))
			}
			b.ReportMetric(float64(heapInUse()-before)/memEntries, "B/entry")
			runtime.KeepAlive(o)
			o.StopAllGoroutines()
		}
	})
	for _, mode := range []struct {
		name     string
		maxBytes int64
	}{{"stampede", 0}, {"stampede-bytes", 1 << 40}} {
		b.Run(mode.name, func(b *testing.B) {
			for b.Loop() {
				before := heapInUse()
				clock := coarse.New(time.Millisecond)
				defer clock.Stop()
				l, err := newL1[[]byte](memEntries, mode.maxBytes, time.Hour, time.Second, clock, slog.New(slog.DiscardHandler), false)
				if err != nil {
					b.Fatal(err)
				}
				since := l.mark()
				now := since.at
				h := envelope.Header{Gen: 1, WrittenAt: now, FreshUntil: now + int64(time.Hour), LoadTime: time.Millisecond}
				for i, k := range keys {
					l.store(k, l1Entry[[]byte]{value: value100(i), h: h, size: envelope.HeaderSize + 100}, since, h.FreshUntil, time.Hour)
				}
				b.ReportMetric(float64(heapInUse()-before)/memEntries, "B/entry")
				_, estimated := l.size()
				b.ReportMetric(float64(estimated)/memEntries, "estimated-B/entry")
				runtime.KeepAlive(l)
				l.close()
			}
		})
	}
}

// BenchmarkHitChecks is what an L1 hit decides beyond otter's lookup: freshness and the early
// refresh check (XFetch) on a fresh entry, far from and near its expiry. The target: at most
// 15 ns for the checks and the jitter together (jitter is drawn on writes, not on hits).
func BenchmarkHitChecks(b *testing.B) {
	c := &Cache[string]{rand: rand.Float64}
	p := DefaultPolicy()
	now := time.Now().UnixNano()
	for _, left := range []time.Duration{time.Minute, 50 * time.Millisecond} {
		b.Run(fmt.Sprint("left=", left), func(b *testing.B) {
			h := envelope.Header{Gen: 1, WrittenAt: now, FreshUntil: now + int64(left), LoadTime: 20 * time.Millisecond}
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				if c.judge(&h, now, &p, false) == serve {
					n++
				}
			}
			runtime.KeepAlive(n)
		})
	}
	b.Run("jitter", func(b *testing.B) {
		c.jitter = 0.1
		b.ReportAllocs()
		var d time.Duration
		for b.Loop() {
			d += c.jittered(time.Minute)
		}
		runtime.KeepAlive(d)
	})
}
