// Package hotkey finds the keys that most requests ask for, cheaply enough to watch every
// request: it samples one request in N, counts the samples in a count-min sketch, and keeps the
// k keys with the highest counts of the current window in a small table.
//
// Observe, and Sampled with Count, take no lock and allocate nothing. A sample whose estimate
// would enter the table
// (rarely, once the table is full: only keys with more samples than its smallest entry) tries a
// lock and skips its update if another goroutine holds it; the estimate is an estimate anyway.
package hotkey

import (
	"hash/maphash"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
)

const (
	depth     = 4              // rows of the sketch: the chance of a bad estimate falls as e^-depth
	widthBits = 12             // depth*widthBits <= 64: each row's index is its own bits of one hash
	width     = 1 << widthBits // counters per row: an estimate exceeds the truth by at most e/width of the samples, mostly
)

// Entry is a key and its estimated number of requests (samples times the sampling rate).
type Entry struct {
	Key   string
	Count uint64
}

// Detector counts requests per key over windows that its owner ends with Rotate. It is safe
// for concurrent use.
type Detector struct {
	k      int
	sample uint32 // sample one request in sample (a power of two)
	shift  uint   // 64 - log2(sample), for Sampled
	rand   func() uint32
	seed   maphash.Seed

	cur   atomic.Pointer[sketch]
	spare *sketch // owned by Rotate
	floor atomic.Uint32

	mu  sync.Mutex
	top []Entry // guarded by mu; counts in samples
}

type sketch [depth][width]atomic.Uint32

// New returns a Detector that keeps k keys and samples one request in sample, rounded up to a
// power of two. rand returns uniform 32-bit numbers and must be safe for concurrent use.
func New(k, sample int, rand func() uint32) *Detector {
	s := uint32(1)
	for int(s) < sample {
		s <<= 1
	}
	d := &Detector{k: k, sample: s, shift: uint(64 - bits.TrailingZeros32(s)), rand: rand, seed: maphash.MakeSeed(),
		spare: new(sketch), top: make([]Entry, 0, k)}
	d.cur.Store(new(sketch))
	return d
}

// Observe counts one request for key: a sample of one in the sampling rate, drawn at random.
func (d *Detector) Observe(key string) {
	if d.rand()&(d.sample-1) == 0 {
		d.Count(key)
	}
}

// Sampled reports whether the request numbered n should be counted: true for one n in the
// sampling rate. A caller that numbers its requests anyway (any count that grows by one per
// request) samples for free. The sampled numbers follow no period (the top bits of n times the
// golden ratio), so a caller that cycles through a fixed list of keys does not always sample
// the same one.
func (d *Detector) Sampled(n uint64) bool {
	return (n*0x9e3779b97f4a7c15)>>d.shift == 0
}

// Count counts a sampled request for key.
func (d *Detector) Count(key string) {
	sk := d.cur.Load()
	est := ^uint32(0)
	for _, c := range d.counters(sk, key) {
		est = min(est, c.Add(1))
	}
	// The table learns a key's estimate at powers of two and then every 16 samples; Rotate
	// reads the final counts from the sketch, so a key's later samples are not lost.
	if est > d.floor.Load() && (est&(est-1) == 0 || est%16 == 0) {
		d.offer(key, est)
	}
}

// counters returns the counters of key in sk, one per row.
func (d *Detector) counters(sk *sketch, key string) [depth]*atomic.Uint32 {
	// Each row takes its own 12 bits of one 64-bit hash, so rows are independent: a key shares
	// all its counters with another key with probability 2^-48. (Deriving the rows as h1 + i*h2
	// mod 4096 leaves only 2^24 distinct sets of counters; among a million keys some cold key then
	// shares every counter with a hot one and reads as hot.)
	h := maphash.String(d.seed, key)
	var cs [depth]*atomic.Uint32
	for i := range depth {
		cs[i] = &sk[i][(h>>(widthBits*i))&(width-1)]
	}
	return cs
}

// estimate returns the count of key in sk: the least of its counters.
func (d *Detector) estimate(sk *sketch, key string) uint32 {
	est := ^uint32(0)
	for _, c := range d.counters(sk, key) {
		est = min(est, c.Load())
	}
	return est
}

// offer puts key in the table with its estimate, if it belongs there and the lock is free.
func (d *Detector) offer(key string, est uint32) {
	if !d.mu.TryLock() {
		return
	}
	defer d.mu.Unlock()
	if i := slices.IndexFunc(d.top, func(e Entry) bool { return e.Key == key }); i >= 0 {
		d.top[i].Count = uint64(est)
	} else if len(d.top) < d.k {
		d.top = append(d.top, Entry{Key: key, Count: uint64(est)})
	} else {
		low := 0
		for i := range d.top {
			if d.top[i].Count < d.top[low].Count {
				low = i
			}
		}
		if uint64(est) <= d.top[low].Count {
			return
		}
		d.top[low] = Entry{Key: key, Count: uint64(est)}
	}
	if len(d.top) == d.k {
		low := d.top[0].Count
		for _, e := range d.top[1:] {
			low = min(low, e.Count)
		}
		d.floor.Store(uint32(low))
	}
}

// Rotate ends the current window: it returns the window's top keys, most requested first, with
// their estimated request counts, and starts a new window. Only one goroutine may call Rotate.
func (d *Detector) Rotate() []Entry {
	fresh := d.spare
	old := d.cur.Swap(fresh)
	d.mu.Lock()
	top := slices.Clone(d.top)
	d.top = d.top[:0]
	d.floor.Store(0)
	d.mu.Unlock()
	for i := range top {
		top[i].Count = uint64(d.estimate(old, top[i].Key))
	}
	// Observers that loaded old just before the swap may still add to it; a few samples of
	// this window then count in a later one.
	for i := range old {
		for j := range old[i] {
			old[i][j].Store(0)
		}
	}
	d.spare = old
	for i := range top {
		top[i].Count *= uint64(d.sample)
	}
	slices.SortFunc(top, func(a, b Entry) int {
		switch {
		case a.Count > b.Count:
			return -1
		case a.Count < b.Count:
			return 1
		}
		return 0
	})
	return top
}
