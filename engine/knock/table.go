package knock

// table is a bounded map from a source address to nseq values of V (one per
// knock sequence), evicting the least recently used source when full.
// Storage is pointer-free and grows by doubling up to max entries, so an
// idle Knocker stays small; once it has grown to the working set, get,
// insert, touch and remove do not allocate. It is not safe for concurrent
// use: the owning shard's mutex guards it.
type table[V any] struct {
	nseq int
	max  int
	idx  map[[16]byte]int32
	keys [][16]byte
	vals []V // entry e owns vals[e*nseq : (e+1)*nseq]

	// A doubly linked list through prev/next orders the entries in use,
	// most recently used at head; free entries are chained through next.
	prev, next []int32
	head, tail int32
	free       int32
	n          int
}

const none = -1

// initialEntries is the size of a new table.
const initialEntries = 8

func newTable[V any](max, nseq int) *table[V] {
	t := &table[V]{nseq: nseq, max: max, head: none, tail: none, free: none}
	t.grow()
	return t
}

// grow doubles the storage (up to max entries) and chains the new entries
// into the free list. The map grows by itself.
func (t *table[V]) grow() {
	old := len(t.keys)
	n := min(max(2*old, initialEntries), t.max)
	if t.idx == nil {
		t.idx = make(map[[16]byte]int32, n)
	}
	t.keys = append(t.keys, make([][16]byte, n-old)...)
	t.vals = append(t.vals, make([]V, (n-old)*t.nseq)...)
	t.prev = append(t.prev, make([]int32, n-old)...)
	t.next = append(t.next, make([]int32, n-old)...)
	for i := n - 1; i >= old; i-- {
		t.next[i] = t.free
		t.free = int32(i)
	}
}

// get returns the entry of src.
func (t *table[V]) get(src [16]byte) (int32, bool) {
	e, ok := t.idx[src]
	return e, ok
}

// values returns the per-sequence values of entry e.
func (t *table[V]) values(e int32) []V {
	return t.vals[int(e)*t.nseq : int(e+1)*t.nseq]
}

// key returns the source of entry e.
func (t *table[V]) key(e int32) [16]byte { return t.keys[e] }

// insert adds src with zeroed values and makes it the most recently used.
// When the table is full the least recently used entry is evicted first and
// evicted is true. src must not be present.
func (t *table[V]) insert(src [16]byte) (e int32, evicted bool) {
	if t.free == none {
		if len(t.keys) < t.max {
			t.grow()
		} else {
			t.remove(t.tail)
			evicted = true
		}
	}
	e = t.free
	t.free = t.next[e]
	t.keys[e] = src
	clear(t.values(e))
	t.idx[src] = e
	t.pushFront(e)
	t.n++
	return e, evicted
}

// touch makes e the most recently used entry.
func (t *table[V]) touch(e int32) {
	if t.head == e {
		return
	}
	t.unlink(e)
	t.pushFront(e)
}

// remove deletes entry e.
func (t *table[V]) remove(e int32) {
	delete(t.idx, t.keys[e])
	t.unlink(e)
	t.next[e] = t.free
	t.free = e
	t.n--
}

// len returns the number of entries in use.
func (t *table[V]) len() int { return t.n }

// each calls fn for every entry from the least to the most recently used;
// fn may remove the entry it is given.
func (t *table[V]) each(fn func(e int32)) {
	for e := t.tail; e != none; {
		p := t.prev[e]
		fn(e)
		e = p
	}
}

func (t *table[V]) pushFront(e int32) {
	t.prev[e] = none
	t.next[e] = t.head
	if t.head != none {
		t.prev[t.head] = e
	}
	t.head = e
	if t.tail == none {
		t.tail = e
	}
}

func (t *table[V]) unlink(e int32) {
	p, n := t.prev[e], t.next[e]
	if p != none {
		t.next[p] = n
	} else {
		t.head = n
	}
	if n != none {
		t.prev[n] = p
	} else {
		t.tail = p
	}
}
