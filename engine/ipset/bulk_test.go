package ipset

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/nfqfw/nfqfw/rules"
	"github.com/nfqfw/nfqfw/scripts/sandbox"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// setsIn returns a Sets opened in a fresh namespace with both ban sets.
func setsIn(tb testing.TB) *Sets {
	tb.Helper()
	sandbox.Require(tb, "ipset")
	n := sandbox.NewNetns(tb, "ipset-bulk")
	sets, err := OpenAt(netns.NsHandle(n.Handle()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(sets.Close)
	if err := sets.Ensure(Ban4, rules.FamilyIPv4, true); err != nil {
		tb.Fatal(err)
	}
	if err := sets.Ensure(Ban6, rules.FamilyIPv6, true); err != nil {
		tb.Fatal(err)
	}
	return sets
}

// bans returns n IPv4 entries 10.x.y.z with timeouts of 1 to 10 hours.
func bans(n int) []Entry {
	out := make([]Entry, n)
	for i := range out {
		out[i] = Entry{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32), Timeout: time.Duration(1+i%10) * time.Hour}
	}
	return out
}

func TestAddMany(t *testing.T) {
	sets := setsIn(t)
	want := bans(3000)
	if err := sets.AddMany(Ban4, want); err != nil {
		t.Fatal(err)
	}
	// Again, as after a reload: present entries get their timeout replaced.
	if err := sets.AddMany(Ban4, want); err != nil {
		t.Fatalf("second AddMany: %v", err)
	}
	got, err := sets.List(Ban4)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("set holds %d entries, want %d", len(got), len(want))
	}
	for i, e := range got {
		if e.Prefix != want[i].Prefix || e.Timeout > want[i].Timeout || e.Timeout < want[i].Timeout-time.Minute {
			t.Fatalf("entry %d = %v %v, want %v %v", i, e.Prefix, e.Timeout, want[i].Prefix, want[i].Timeout)
		}
	}
	six := []Entry{{Prefix: netip.MustParsePrefix("2001:db8::1/128")}, {Prefix: netip.MustParsePrefix("2001:db8:1::/64"), Timeout: time.Minute}}
	if err := sets.AddMany(Ban6, six); err != nil {
		t.Fatalf("AddMany IPv6: %v", err)
	}
	if got, _ := sets.List(Ban6); len(got) != 2 || got[0].Prefix != six[0].Prefix || got[1].Prefix != six[1].Prefix {
		t.Errorf("IPv6 set holds %v, want %v", got, six)
	}
	// An IPv6 address in the IPv4 set is refused; the rest go in.
	mixed := []Entry{{Prefix: netip.MustParsePrefix("192.0.2.1/32")}, {Prefix: netip.MustParsePrefix("2001:db8::9/128")}, {Prefix: netip.MustParsePrefix("198.51.100.0/24")}}
	err = sets.AddMany(Ban4, mixed)
	if !errors.Is(err, ErrFamily) {
		t.Errorf("AddMany with an IPv6 address into the IPv4 set = %v, want ErrFamily", err)
	}
	if got, _ := sets.List(Ban4); len(got) != len(want)+2 {
		t.Errorf("after the refusal the set holds %d entries, want %d", len(got), len(want)+2)
	}
	if err := sets.AddMany("nfqfw-no-such-set", want[:1]); !errors.Is(err, ErrNoSet) {
		t.Errorf("AddMany to a missing set = %v, want ErrNoSet", err)
	}
}

// BenchmarkLoadBans loads 100,000 bans into the kernel's ban set, as the
// daemon does at start (an empty set) and as a reload or restart finds it
// (every entry already there: timeouts replaced), batched (AddMany, the
// way ipset restore works) and with one netlink request per entry (Add).
// The set is a fleet gateway's (EnsureSized for 262,144 entries, its hash
// sized for them); "empty-grown" is an empty set created with the
// kernel's default hash size, which the kernel grows while it fills. It
// reports seconds per load.
func BenchmarkLoadBans(b *testing.B) {
	const n = 100_000
	entries := bans(n)
	for _, how := range []string{"batched", "per-entry"} {
		load := func(sets *Sets) error {
			if how == "batched" {
				return sets.AddMany(Ban4, entries)
			}
			for _, e := range entries {
				if err := sets.Add(Ban4, e.Prefix, e.Timeout); err != nil {
					return err
				}
			}
			return nil
		}
		for _, state := range []string{"empty", "empty-grown", "full"} {
			b.Run(fmt.Sprintf("%s/%s", how, state), func(b *testing.B) {
				sets := setsIn(b)
				var total time.Duration
				for b.Loop() {
					b.StopTimer()
					sets.Destroy(Ban4)
					var err error
					if state == "empty-grown" {
						zero := uint32(0)
						err = sets.h.IpsetCreate(Ban4, "hash:net", netlink.IpsetCreateOptions{
							Family: unix.AF_INET, Timeout: &zero, MaxElements: 1 << 18,
						})
					} else {
						err = sets.EnsureSized(Ban4, rules.FamilyIPv4, true, 1<<18)
					}
					if err != nil {
						b.Fatal(err)
					}
					if state == "full" {
						if err := sets.AddMany(Ban4, entries); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					t0 := time.Now()
					if err := load(sets); err != nil {
						b.Fatal(err)
					}
					total += time.Since(t0)
				}
				b.ReportMetric(total.Seconds()/float64(b.N), "s/100k-bans")
			})
		}
	}
}

// TestEnsureSizedCount: a set made for 262,144 entries starts with the
// buckets it needs when full, one of the default size with the kernel's
// 1,024; an existing set of the same size is kept, entries included, one
// of another size is ErrSetMismatch; Count reads the entries from the
// set's header.
func TestEnsureSizedCount(t *testing.T) {
	sets := setsIn(t)
	header := func(name string) *netlink.IPSetResult {
		t.Helper()
		r, err := sets.h.IpsetList(name)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := header(Ban4); r.HashSize != defaultHashSize || r.MaxElements != 1<<16 {
		t.Errorf("default set: hashsize %d maxelem %d, want %d and 65536", r.HashSize, r.MaxElements, defaultHashSize)
	}
	const big = "nfqfw-test-big"
	if err := sets.EnsureSized(big, rules.FamilyIPv4, true, 1<<18); err != nil {
		t.Fatal(err)
	}
	if r := header(big); r.HashSize != 1<<15 || r.MaxElements != 1<<18 || r.TypeName != "hash:net" || r.Timeout == nil {
		t.Errorf("fleet-sized set: type %s hashsize %d maxelem %d timeout %v, want hash:net 32768 262144 0", r.TypeName, r.HashSize, r.MaxElements, r.Timeout)
	}
	if n, err := sets.Count(big); err != nil || n != 0 {
		t.Errorf("Count of an empty set = %d, %v; want 0", n, err)
	}
	if err := sets.AddMany(big, bans(3000)); err != nil {
		t.Fatal(err)
	}
	if err := sets.EnsureSized(big, rules.FamilyIPv4, true, 1<<18); err != nil {
		t.Errorf("EnsureSized of an existing set of the same size: %v", err)
	}
	if n, err := sets.Count(big); err != nil || n != 3000 {
		t.Errorf("Count after 3,000 adds = %d, %v; want 3000", n, err)
	}
	if err := sets.EnsureSized(big, rules.FamilyIPv4, true, 1<<17); !errors.Is(err, ErrSetMismatch) {
		t.Errorf("EnsureSized with another size = %v, want ErrSetMismatch", err)
	}
	if _, err := sets.Count("nfqfw-no-such-set"); !errors.Is(err, ErrNoSet) {
		t.Errorf("Count of a missing set = %v, want ErrNoSet", err)
	}
	if err := sets.EnsureSized(big, rules.Family(9), true, 0); !errors.Is(err, ErrFamily) {
		t.Errorf("EnsureSized of family 9 = %v, want ErrFamily", err)
	}
}
