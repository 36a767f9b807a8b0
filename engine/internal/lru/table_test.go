package lru

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// key returns a distinct key for n: an IPv4-mapped address.
func key(n int) [16]byte {
	return [16]byte{10: 0xff, 11: 0xff, 12: byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

// order returns the numbers of the keys of t, least recently used first.
func order(t *Table) []int {
	out := []int{}
	for s := t.Oldest(); s != None; s = t.Newer(s) {
		k := t.Key(s)
		out = append(out, int(k[12])<<24|int(k[13])<<16|int(k[14])<<8|int(k[15]))
	}
	return out
}

func TestTable(t *testing.T) {
	// op is one call: insert, touch or remove key n.
	type op struct {
		do string
		n  int
	}
	tests := []struct {
		name        string
		initial     int
		limit       int
		ops         []op
		wantOrder   []int
		wantEvicted []int // keys inserted when the table was full
	}{
		{
			name:      "empty",
			limit:     4,
			wantOrder: []int{},
		},
		{
			name:      "insertion order",
			limit:     4,
			ops:       []op{{"insert", 1}, {"insert", 2}, {"insert", 3}},
			wantOrder: []int{1, 2, 3},
		},
		{
			name:      "touch moves to the newest end",
			limit:     4,
			ops:       []op{{"insert", 1}, {"insert", 2}, {"insert", 3}, {"touch", 1}},
			wantOrder: []int{2, 3, 1},
		},
		{
			name:      "touching the newest changes nothing",
			limit:     4,
			ops:       []op{{"insert", 1}, {"insert", 2}, {"touch", 2}},
			wantOrder: []int{1, 2},
		},
		{
			name:        "full: the least recently used goes",
			limit:       3,
			ops:         []op{{"insert", 1}, {"insert", 2}, {"insert", 3}, {"touch", 1}, {"insert", 4}, {"insert", 5}},
			wantOrder:   []int{1, 4, 5},
			wantEvicted: []int{4, 5},
		},
		{
			name:      "removed slots are reused before evicting",
			limit:     3,
			ops:       []op{{"insert", 1}, {"insert", 2}, {"insert", 3}, {"remove", 2}, {"insert", 4}},
			wantOrder: []int{1, 3, 4},
		},
		{
			name:      "remove oldest, middle and newest",
			limit:     5,
			ops:       []op{{"insert", 1}, {"insert", 2}, {"insert", 3}, {"insert", 4}, {"insert", 5}, {"remove", 1}, {"remove", 3}, {"remove", 5}},
			wantOrder: []int{2, 4},
		},
		{
			name:      "remove everything",
			limit:     2,
			ops:       []op{{"insert", 1}, {"insert", 2}, {"remove", 2}, {"remove", 1}},
			wantOrder: []int{},
		},
		{
			name:        "grows from one slot to the limit, then evicts",
			initial:     1,
			limit:       20,
			ops:         []op{{"insert", 1}, {"insert", 2}, {"insert", 3}, {"insert", 4}, {"insert", 5}, {"insert", 6}, {"insert", 7}, {"insert", 8}, {"insert", 9}, {"insert", 10}, {"insert", 11}, {"insert", 12}, {"insert", 13}, {"insert", 14}, {"insert", 15}, {"insert", 16}, {"insert", 17}, {"insert", 18}, {"insert", 19}, {"insert", 20}, {"insert", 21}},
			wantOrder:   []int{2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21},
			wantEvicted: []int{21},
		},
		{
			name:        "a limit below one holds one key",
			limit:       0,
			ops:         []op{{"insert", 1}, {"insert", 2}},
			wantOrder:   []int{2},
			wantEvicted: []int{2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tb Table
			tb.Init(tt.initial, tt.limit)
			evicted := []int{}
			for _, o := range tt.ops {
				s, ok := tb.Get(key(o.n))
				switch o.do {
				case "insert":
					if ok {
						t.Fatalf("insert %d: already present", o.n)
					}
					var ev bool
					if s, ev = tb.Insert(key(o.n)); ev {
						evicted = append(evicted, o.n)
					}
					if got, _ := tb.Get(key(o.n)); got != s {
						t.Fatalf("insert %d: Get = %d, Insert returned %d", o.n, got, s)
					}
					if int(s) >= tb.Slots() || tb.Slots() > tb.Limit() {
						t.Fatalf("insert %d: slot %d outside storage %d (limit %d)", o.n, s, tb.Slots(), tb.Limit())
					}
				case "touch", "remove":
					if !ok {
						t.Fatalf("%s %d: not present", o.do, o.n)
					}
					if o.do == "touch" {
						tb.Touch(s)
					} else {
						tb.Remove(s)
						if _, ok := tb.Get(key(o.n)); ok {
							t.Fatalf("remove %d: still present", o.n)
						}
					}
				}
			}
			if diff := cmp.Diff(tt.wantOrder, order(&tb)); diff != "" {
				t.Errorf("keys, least recently used first (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(len(tt.wantOrder), tb.Len()); diff != "" {
				t.Errorf("Len (-want +got):\n%s", diff)
			}
			if tt.wantEvicted == nil {
				tt.wantEvicted = []int{}
			}
			if diff := cmp.Diff(tt.wantEvicted, evicted); diff != "" {
				t.Errorf("inserts that evicted (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTableAgainstModel runs random operations on a Table and on a plain
// slice kept in least-recently-used order, and compares them after each.
func TestTableAgainstModel(t *testing.T) {
	for _, c := range []struct{ initial, limit int }{{1, 1}, {1, 7}, {16, 16}, {3, 64}} {
		rng := rand.New(rand.NewPCG(uint64(c.limit), uint64(c.initial)))
		var tb Table
		tb.Init(c.initial, c.limit)
		var model []int // least recently used first
		for step := range 5000 {
			n := rng.IntN(3 * c.limit)
			pos := -1
			for i, m := range model {
				if m == n {
					pos = i
				}
			}
			s, ok := tb.Get(key(n))
			if ok != (pos >= 0) {
				t.Fatalf("limit %d step %d: Get(%d) present = %v, model says %v", c.limit, step, n, ok, pos >= 0)
			}
			switch {
			case !ok:
				_, evicted := tb.Insert(key(n))
				if wantEvict := len(model) == c.limit; evicted != wantEvict {
					t.Fatalf("limit %d step %d: insert %d evicted = %v, want %v", c.limit, step, n, evicted, wantEvict)
				}
				if len(model) == c.limit {
					model = model[1:]
				}
				model = append(model, n)
			case rng.IntN(3) == 0:
				tb.Remove(s)
				model = append(model[:pos], model[pos+1:]...)
			default:
				tb.Touch(s)
				model = append(append(model[:pos:pos], model[pos+1:]...), n)
			}
			if got := order(&tb); !slices.Equal(model, got) {
				t.Fatalf("limit %d step %d: keys, least recently used first (-want +got):\n%s", c.limit, step, cmp.Diff(model, got))
			}
			if tb.Len() != len(model) {
				t.Fatalf("limit %d step %d: Len = %d, want %d", c.limit, step, tb.Len(), len(model))
			}
		}
	}
}

func TestWalkRemovingEach(t *testing.T) {
	var tb Table
	tb.Init(4, 4)
	for n := range 4 {
		tb.Insert(key(n))
	}
	var got []int
	for s := tb.Oldest(); s != None; {
		next := tb.Newer(s)
		k := tb.Key(s)
		got = append(got, int(k[15]))
		if k[15]%2 == 0 {
			tb.Remove(s)
		}
		s = next
	}
	if diff := cmp.Diff([]int{0, 1, 2, 3}, got); diff != "" {
		t.Errorf("walked (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{1, 3}, order(&tb)); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}
}

func TestTableDoesNotAllocate(t *testing.T) {
	var tb Table
	tb.Init(8, 1000)
	i := 0
	op := func() {
		n := i % 5000
		i++
		s, ok := tb.Get(key(n))
		switch {
		case !ok:
			tb.Insert(key(n))
		case n%3 == 0:
			tb.Remove(s)
		default:
			tb.Touch(s)
		}
	}
	for range 20000 { // grow the storage and the map to the working set
		op()
	}
	if allocs := testing.AllocsPerRun(20000, op); allocs != 0 {
		t.Errorf("%v allocations per operation, want 0", allocs)
	}
}

func TestHashSpreadsLowBytes(t *testing.T) {
	// 4096 IPv4 addresses of one /20 over 64 shards: every shard gets
	// some, none gets more than twice its share.
	const shards = 64
	var counts [shards]int
	for n := range 4096 {
		k := key(0x0a000000 + n)
		counts[Hash(&k, 0x1234)%shards]++
	}
	for s, c := range counts {
		if c == 0 || c > 2*4096/shards {
			t.Errorf("shard %d holds %d of 4096 keys", s, c)
		}
	}
	k := key(1)
	if Hash(&k, 1) == Hash(&k, 2) {
		t.Errorf("Hash ignores the seed")
	}
}

func BenchmarkTable(b *testing.B) {
	const tracked = 100_000
	var tb Table
	tb.Init(tracked, tracked)
	for n := range tracked {
		tb.Insert(key(n))
	}
	b.Run("touch", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			s, _ := tb.Get(key(i % tracked))
			tb.Touch(s)
			i++
		}
	})
	b.Run("evict", func(b *testing.B) {
		b.ReportAllocs()
		i := tracked
		for b.Loop() {
			tb.Insert(key(i))
			i++
		}
	})
}
