// Package stripe provides counters that many goroutines can increment at once without
// contending for one cache line.
package stripe

import (
	"runtime"
	"sync/atomic"
	"unsafe"
)

// cacheLine is two 64-byte lines: processors prefetch lines in adjacent pairs, so stripes one
// line apart still contend.
const cacheLine = 128

// Counters is a fixed set of n uint64 counters, striped over cache lines. The zero value is
// not usable; create one with New.
type Counters struct {
	n       int
	width   int // counters per stripe, rounded up to whole cache lines
	mask    uint32
	stripes []atomic.Uint64
}

// New returns n counters with enough stripes for the machine's parallelism: 32 per processor,
// at least 64, so that two running goroutines rarely hash to the same stripe (when they do,
// they contend for its cache line and a hit costs about three times as much).
func New(n int) *Counters {
	stripes := 64
	for stripes < 32*runtime.GOMAXPROCS(0) {
		stripes <<= 1
	}
	width := (n*8 + cacheLine - 1) / cacheLine * cacheLine / 8
	// Over-allocate by one line and start at a line boundary, so no two stripes share a line.
	buf := make([]atomic.Uint64, stripes*width+cacheLine/8)
	off := 0
	for uintptr(unsafe.Pointer(&buf[off]))%cacheLine != 0 {
		off++
	}
	return &Counters{n: n, width: width, mask: uint32(stripes - 1), stripes: buf[off : off+stripes*width]}
}

// Add adds 1 to counter i and returns its new count in the caller's stripe: a number that
// grows by one with each Add of the goroutines that share the stripe.
func (c *Counters) Add(i int) uint64 {
	return c.stripes[int(stackHash()&c.mask)*c.width+i].Add(1)
}

// Load returns the sum of counter i over the stripes. It is not an atomic snapshot of all
// counters, only of each one.
func (c *Counters) Load(i int) uint64 {
	var sum uint64
	for s := 0; s < len(c.stripes); s += c.width {
		sum += c.stripes[s+i].Load()
	}
	return sum
}

// stackHash picks a stripe from the address of the calling goroutine's stack: it stays the same
// while a goroutine runs (so one goroutine keeps using one cache line) and differs between
// goroutines that run at the same time. A stack that grows moves, which only moves the stripe.
//
//go:nosplit
func stackHash() uint32 {
	var x byte
	// Bits below the smallest stack (2 KiB) depend on call depth, not on the goroutine.
	a := uint64(uintptr(unsafe.Pointer(&x))) >> 11
	// The finalizer of MurmurHash3 spreads every input bit over the low bits that pick a stripe.
	a ^= a >> 33
	a *= 0xff51afd7ed558ccd
	a ^= a >> 33
	return uint32(a)
}
