package lru

import "encoding/binary"

// Hash mixes both halves of key with seed (splitmix64's finaliser), so
// that keys differing only in their low bytes (IPv4 addresses in the mapped
// form) spread over all shards and an outsider who does not know seed
// cannot aim at one shard.
func Hash(key *[16]byte, seed uint64) uint64 {
	return HashWords(binary.LittleEndian.Uint64(key[:8]), binary.LittleEndian.Uint64(key[8:]), seed)
}

// HashWords is Hash of a key given as its two 8-byte halves, for callers
// that hold the key in registers.
func HashWords(a, b, seed uint64) uint64 { return mix(mix(a^seed) ^ b) }

func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
