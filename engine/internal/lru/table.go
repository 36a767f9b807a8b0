package lru

// None is the slot number of no slot: what Oldest and Newer return at the
// end of the chain.
const None int32 = -1

// initialSlots is the storage a growing Table starts with.
const initialSlots = 8

type link struct{ prev, next int32 }

// Table maps keys to slots 0..Limit()-1, the slots in use chained from the
// least to the most recently used. The zero value is a table that holds
// nothing; Init makes a usable one.
type Table struct {
	idx   map[[16]byte]int32
	keys  [][16]byte // keys[s] is the key of slot s while in use
	links []link
	head  int32 // least recently used, None when empty
	tail  int32 // most recently used, None when empty
	free  int32 // first removed slot, chained through links[].next; None when none
	used  int32 // slots handed out at least once: keys[:used]
	limit int32
}

// Init makes t an empty table of at most limit slots (at least one), with
// storage for initial of them reserved; Insert grows the storage by
// doubling up to limit. Init(limit, limit) reserves everything at once.
func (t *Table) Init(initial, limit int) {
	limit = max(limit, 1)
	initial = min(max(initial, 1), limit)
	*t = Table{
		idx:   make(map[[16]byte]int32, initial),
		keys:  make([][16]byte, initial),
		links: make([]link, initial),
		head:  None, tail: None, free: None,
		limit: int32(limit),
	}
}

// Get returns the slot of key.
func (t *Table) Get(key [16]byte) (slot int32, ok bool) {
	slot, ok = t.idx[key]
	return slot, ok
}

// Insert adds key, which must not be present, as the most recently used
// and returns its slot. When the table is full the least recently used key
// is removed first, evicted is true and its slot is the one returned.
// The owner resets whatever it keeps for slot; it may need to grow its own
// storage to Slots() first.
func (t *Table) Insert(key [16]byte) (slot int32, evicted bool) {
	switch {
	case t.free != None:
		slot = t.free
		t.free = t.links[slot].next
	case int(t.used) < len(t.keys):
		slot = t.used
		t.used++
	case t.used < t.limit:
		t.grow()
		slot = t.used
		t.used++
	default:
		slot = t.head
		delete(t.idx, t.keys[slot])
		t.unlink(slot)
		evicted = true
	}
	t.keys[slot] = key
	t.idx[key] = slot
	t.pushTail(slot)
	return slot, evicted
}

// grow doubles the storage, up to limit slots. The map grows by itself.
func (t *Table) grow() {
	n := int(min(max(2*int32(len(t.keys)), initialSlots), t.limit))
	t.keys = append(t.keys, make([][16]byte, n-len(t.keys))...)
	t.links = append(t.links, make([]link, n-len(t.links))...)
}

// Touch makes slot, which must be in use, the most recently used.
func (t *Table) Touch(slot int32) {
	if t.tail == slot {
		return
	}
	t.unlink(slot)
	t.pushTail(slot)
}

// Remove deletes the key of slot, which must be in use, and frees the slot
// for a later Insert.
func (t *Table) Remove(slot int32) {
	delete(t.idx, t.keys[slot])
	t.unlink(slot)
	t.links[slot].next = t.free
	t.free = slot
}

// Key returns the key of slot, which must be in use.
func (t *Table) Key(slot int32) [16]byte { return t.keys[slot] }

// Len returns how many keys the table holds.
func (t *Table) Len() int { return len(t.idx) }

// Limit returns how many keys the table holds at most.
func (t *Table) Limit() int { return int(t.limit) }

// Slots returns the size of the storage grown so far: every slot Insert
// returned is below it.
func (t *Table) Slots() int { return len(t.keys) }

// Oldest returns the least recently used slot, or None when the table is
// empty.
func (t *Table) Oldest() int32 { return t.head }

// Newer returns the slot used next after slot, or None when slot is the
// most recently used. To remove slots while walking, take Newer first.
func (t *Table) Newer(slot int32) int32 { return t.links[slot].next }

func (t *Table) unlink(slot int32) {
	l := t.links[slot]
	if l.prev != None {
		t.links[l.prev].next = l.next
	} else {
		t.head = l.next
	}
	if l.next != None {
		t.links[l.next].prev = l.prev
	} else {
		t.tail = l.prev
	}
}

func (t *Table) pushTail(slot int32) {
	t.links[slot] = link{prev: t.tail, next: None}
	if t.tail != None {
		t.links[t.tail].next = slot
	} else {
		t.head = slot
	}
	t.tail = slot
}
