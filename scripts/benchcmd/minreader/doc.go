// Command minreader is the benchmark's floor: the smallest NFQUEUE reader
// that accepts every packet, built directly on go-nfqueue with one verdict
// per packet (the design's baseline "minimal Go accept-all"). With -nfq it
// runs the same accept-all decision through nfqfw's own queue reader
// (engine/nfq) instead, so batching can be measured apart from the engine.
//
//	minreader -queue 0              # plain go-nfqueue, SetVerdict per packet
//	minreader -queue 0 -nfq -batch 64
//
// It runs until SIGINT or SIGTERM and then prints how many packets it
// answered.
package main
