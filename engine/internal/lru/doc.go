// Package lru is the bounded table behind the engine's per-source state
// (recent lists, rate guards, knock progress): a map from a 16-byte key (an
// address in its 16-byte form) to a slot number, with the slots chained from
// the least to the most recently used so that a full table evicts the
// oldest source.
//
// A Table hands out slot numbers, not values: its owner keeps the state of
// each source in its own slices, indexed by slot, and so chooses their
// layout. The table itself is pointer-free apart from its map and slices;
// once its storage has grown to the working set, Get, Insert, Touch and
// Remove do not allocate. A Table is not safe for concurrent use: the
// owner's lock (one per shard) guards it. Hash spreads keys over such
// shards.
package lru
