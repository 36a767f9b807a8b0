package engine

import (
	"net"
	"sync"
	"sync/atomic"
)

// ifNames maps interface indexes (as NFQUEUE reports them) to names (as the
// policy matches them). Lookups of small indexes are a lock-free array read;
// a miss resolves the index once (this allocates, but only on the first
// packet of an interface) and caches it.
//
// Refresh rebuilds the cache from the system's interfaces, so a renamed or
// re-created interface is picked up; the daemon calls it periodically.
type ifNames struct {
	small [256]atomic.Pointer[string]

	mu    sync.RWMutex
	large map[uint32]string
}

func (c *ifNames) name(index uint32) string {
	if index == 0 {
		return ""
	}
	if index < uint32(len(c.small)) {
		if p := c.small[index].Load(); p != nil {
			return *p
		}
	} else {
		c.mu.RLock()
		n, ok := c.large[index]
		c.mu.RUnlock()
		if ok {
			return n
		}
	}
	ifi, err := net.InterfaceByIndex(int(index))
	if err != nil {
		return ""
	}
	c.store(index, ifi.Name)
	return ifi.Name
}

func (c *ifNames) store(index uint32, name string) {
	if index < uint32(len(c.small)) {
		c.small[index].Store(&name)
		return
	}
	c.mu.Lock()
	if c.large == nil {
		c.large = make(map[uint32]string)
	}
	c.large[index] = name
	c.mu.Unlock()
}

// refresh replaces the cache with the current interfaces.
func (c *ifNames) refresh() error {
	ifs, err := net.Interfaces()
	if err != nil {
		return err
	}
	seen := make(map[uint32]bool, len(ifs))
	for _, ifi := range ifs {
		seen[uint32(ifi.Index)] = true
		c.store(uint32(ifi.Index), ifi.Name)
	}
	for i := range c.small {
		if !seen[uint32(i)] {
			c.small[i].Store(nil)
		}
	}
	c.mu.Lock()
	for i := range c.large {
		if !seen[i] {
			delete(c.large, i)
		}
	}
	c.mu.Unlock()
	return nil
}
