package knock

import (
	"sync/atomic"

	"github.com/nfqfw/nfqfw/engine/internal/lru"
)

// table is a bounded map from a source address to nseq values of V (one per
// knock sequence), evicting the least recently used source when full.
// Storage is pointer-free and grows by doubling up to max entries, so an
// idle Knocker stays small; once it has grown to the working set, get,
// insert, touch and remove do not allocate. It is not safe for concurrent
// use: the owning shard's mutex guards it.
type table[V any] struct {
	nseq int
	lru  lru.Table
	vals []V // entry e owns vals[e*nseq : (e+1)*nseq]
}

// initialEntries is the size of a new table.
const initialEntries = 8

func newTable[V any](max, nseq int) *table[V] {
	t := &table[V]{nseq: nseq}
	t.lru.Init(initialEntries, max)
	t.vals = make([]V, t.lru.Slots()*nseq)
	return t
}

// get returns the entry of src.
func (t *table[V]) get(src [16]byte) (int32, bool) { return t.lru.Get(src) }

// values returns the per-sequence values of entry e.
func (t *table[V]) values(e int32) []V {
	return t.vals[int(e)*t.nseq : int(e+1)*t.nseq]
}

// key returns the source of entry e.
func (t *table[V]) key(e int32) [16]byte { return t.lru.Key(e) }

// insert adds src with zeroed values and makes it the most recently used.
// When the table is full the least recently used entry is evicted first and
// evicted is true. src must not be present.
func (t *table[V]) insert(src [16]byte) (e int32, evicted bool) {
	e, evicted = t.lru.Insert(src)
	if n := t.lru.Slots() * t.nseq; n > len(t.vals) {
		t.vals = append(t.vals, make([]V, n-len(t.vals))...)
	}
	clear(t.values(e))
	return e, evicted
}

// getOrInsert returns the entry of src and whether it was there, inserting
// src (as insert, an eviction counted in evictions) when it was not.
func (t *table[V]) getOrInsert(src [16]byte, evictions *atomic.Uint64) (e int32, found bool) {
	if e, found = t.get(src); found {
		return e, true
	}
	e, evicted := t.insert(src)
	if evicted {
		evictions.Add(1)
	}
	return e, false
}

// touch makes e the most recently used entry.
func (t *table[V]) touch(e int32) { t.lru.Touch(e) }

// remove deletes entry e.
func (t *table[V]) remove(e int32) { t.lru.Remove(e) }

// len returns the number of entries in use.
func (t *table[V]) len() int { return t.lru.Len() }

// each calls fn for every entry from the least to the most recently used;
// fn may remove the entry it is given.
func (t *table[V]) each(fn func(e int32)) {
	for e := t.lru.Oldest(); e != lru.None; {
		next := t.lru.Newer(e)
		fn(e)
		e = next
	}
}
