package stampede

import (
	"sync"

	"github.com/stampede-cache/stampede/internal/scripts"
)

// hashIndex maps the hashes that coalesced evictions name (scripts.KeyHash) to the keys of the
// L1, and keeps a generation floor per hash for the keys it does not hold.
//
// A floor is what a tombstone is for a known key: a read whose GET began before a write and
// returned after the write's eviction must not store the value the write replaced. For a key
// the L1 does not hold, the eviction cannot lay a tombstone (it knows only the hash), so it
// lays a floor on the hash, which lives as long as a tombstone; a store of a key new to the L1
// checks the floor of its hash. Laying a floor and reading the keys of a hash happen under one
// lock, and so do checking a floor and adding a key: either the store comes first and the
// eviction finds its key, or the eviction comes first and the store finds the floor.
//
// Keys whose hashes collide are evicted together, and share floors: safe, as an eviction only
// ever removes.
type hashIndex struct {
	stripes [64]hashStripe
}

type hashStripe struct {
	mu      sync.Mutex
	keys    map[uint64][]counted // guarded by mu: the L1's keys (entries and tombstones) by hash
	floors  map[uint64]hashFloor // guarded by mu
	sweepAt int                  // guarded by mu: len(floors) at which expired floors are dropped
}

// counted is a key of the index and how many nodes of the L1 hold it: otter writing over an
// expired entry reports that entry's deletion after the write that replaced it, so the index
// counts insertions and deletions rather than trust their order.
type counted struct {
	key string
	n   int
}

type hashFloor struct {
	gen   uint64 // the newest generation evicted (0: unknown)
	seq   uint64 // the L1's sequence number of the eviction
	until int64  // Unix nanoseconds, the L1's clock
}

func (x *hashIndex) stripe(h uint64) *hashStripe {
	return &x.stripes[h%uint64(len(x.stripes))]
}

// admit adds key to the index, unless the floor of its hash refuses a store of generation gen
// (0: unknown), read since: called by a store of a key the L1 does not hold, under the key's
// lock in the L1.
func (x *hashIndex) admit(key string, gen uint64, since mark, now int64) bool {
	h := scripts.KeyHash(key)
	s := x.stripe(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.floors[h]; ok && f.until > now {
		if f.gen != 0 && gen != 0 {
			if f.gen > gen {
				return false
			}
		} else if f.seq > since.seq {
			return false
		}
	}
	s.add(h, key)
	return true
}

// add adds key to the index (a tombstone the L1 lays for a key it does not hold).
func (x *hashIndex) add(key string) {
	h := scripts.KeyHash(key)
	s := x.stripe(h)
	s.mu.Lock()
	s.add(h, key)
	s.mu.Unlock()
}

func (s *hashStripe) add(h uint64, key string) {
	if s.keys == nil {
		s.keys = make(map[uint64][]counted)
	}
	ks := s.keys[h]
	for i := range ks {
		if ks[i].key == key {
			ks[i].n++
			return
		}
	}
	s.keys[h] = append(ks, counted{key: key, n: 1})
}

// remove drops key from the index: the L1 deleted an entry of it, other than by replacing it.
func (x *hashIndex) remove(key string) {
	h := scripts.KeyHash(key)
	s := x.stripe(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	ks := s.keys[h]
	for i := range ks {
		if ks[i].key == key {
			if ks[i].n--; ks[i].n <= 0 {
				ks[i] = ks[len(ks)-1]
				ks = ks[:len(ks)-1]
			}
			break
		}
	}
	if len(ks) == 0 {
		delete(s.keys, h)
	} else {
		s.keys[h] = ks
	}
}

// floor lays a floor at gen on hash h, and returns the keys of the L1 with that hash.
func (x *hashIndex) floor(h, gen, seq uint64, now, until int64) []string {
	s := x.stripe(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.floors == nil {
		s.floors = make(map[uint64]hashFloor)
	}
	f := s.floors[h]
	if f.until <= now {
		f = hashFloor{}
	}
	s.floors[h] = hashFloor{gen: max(f.gen, gen), seq: seq, until: until}
	if len(s.floors) >= s.sweepAt {
		for k, f := range s.floors {
			if f.until <= now {
				delete(s.floors, k)
			}
		}
		s.sweepAt = max(64, 2*len(s.floors))
	}
	var keys []string
	for _, k := range s.keys[h] {
		keys = append(keys, k.key)
	}
	return keys
}
