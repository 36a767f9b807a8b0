package nfq

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
)

// ProcStatsPath is the kernel's queue table for the reading thread's
// network namespace.
const ProcStatsPath = "/proc/net/netfilter/nfnetlink_queue"

// QueueProcStats is one line of /proc/net/netfilter/nfnetlink_queue: the
// kernel's view of one bound queue.
type QueueProcStats struct {
	Queue       uint16 // queue number
	PeerPortID  uint32 // netlink port id of the bound socket
	QueueTotal  uint32 // packets waiting for a verdict now
	CopyMode    uint8  // 0 none, 1 meta, 2 packet
	CopyRange   uint32 // bytes copied per packet
	Dropped     uint32 // packets dropped because the queue was full; packets accepted by FailOpen are not counted anywhere
	UserDropped uint32 // packets dropped because the socket buffer was full
	IDSequence  uint32 // last packet id: packets queued so far, modulo 2^32
}

// ReadProcStats reads the queue table at path (ProcStatsPath, or a fixture in
// tests). The table is per network namespace: for another namespace read
// /proc/<pid>/net/netfilter/nfnetlink_queue of a process inside it, or
// /proc/thread-self/net/... from a thread switched into it. A missing file means the nfnetlink_queue module is not loaded and
// no queue is bound: that is an empty table, not an error.
//
// The kernel prints 9 columns: queue_number peer_portid queue_total
// copy_mode copy_range queue_dropped queue_user_dropped id_sequence 1.
// Lines with more columns are accepted (the first eight are read), so a
// future kernel that appends one does not break the exporter.
func ReadProcStats(path string) ([]QueueProcStats, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("nfq: read queue stats: %w", err)
	}
	return parseProcStats(data)
}

// procFieldBits are the widths of the first eight columns.
var procFieldBits = [8]int{16, 32, 32, 8, 32, 32, 32, 32}

func parseProcStats(data []byte) ([]QueueProcStats, error) {
	var out []QueueProcStats
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 {
			continue
		}
		if len(f) < 9 {
			return nil, fmt.Errorf("nfq: queue stats line %d: %d columns, want 9: %w", line, len(f), ErrProcFormat)
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(string(f[i]), 10, procFieldBits[i])
			if err != nil {
				return nil, fmt.Errorf("nfq: queue stats line %d column %d: %w: %v", line, i+1, ErrProcFormat, err)
			}
			v[i] = n
		}
		out = append(out, QueueProcStats{
			Queue: uint16(v[0]), PeerPortID: uint32(v[1]), QueueTotal: uint32(v[2]),
			CopyMode: uint8(v[3]), CopyRange: uint32(v[4]), Dropped: uint32(v[5]),
			UserDropped: uint32(v[6]), IDSequence: uint32(v[7]),
		})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("nfq: queue stats: %w: %v", ErrProcFormat, err)
	}
	return out, nil
}
