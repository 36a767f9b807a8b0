package knock

// table is a bounded map from a source address to nseq values of V (one per
// knock sequence), evicting the least recently used source when full. All
// storage is allocated by newTable and pointer-free, so get, insert, touch
// and remove never allocate. It is not safe for concurrent use: the owning
// shard's mutex guards it.
type table[V any] struct {
	nseq int
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

func newTable[V any](capacity, nseq int) *table[V] {
	t := &table[V]{
		nseq: nseq,
		idx:  make(map[[16]byte]int32, capacity),
		keys: make([][16]byte, capacity),
		vals: make([]V, capacity*nseq),
		prev: make([]int32, capacity),
		next: make([]int32, capacity),
		head: none,
		tail: none,
	}
	for i := range t.next {
		t.next[i] = int32(i + 1)
	}
	t.next[capacity-1] = none
	t.free = 0
	return t
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
		t.remove(t.tail)
		evicted = true
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
