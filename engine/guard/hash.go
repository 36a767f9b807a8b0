package guard

import "encoding/binary"

// hash mixes both halves of the address with the seed (splitmix64's
// finaliser), so that addresses differing only in their low bytes spread
// over all shards and an outsider cannot aim at one shard.
func hash(a *[16]byte, seed uint64) uint64 {
	return mix(mix(binary.LittleEndian.Uint64(a[:8])^seed) ^ binary.LittleEndian.Uint64(a[8:]))
}

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
