package testnode

import "sync"

// HostsInOrder is a go-zookeeper HostProvider that tries Servers in the
// order given: go-zookeeper shuffles the list it passes to Init, which is
// ignored. A test puts the node it wants the session on first.
type HostsInOrder struct {
	Servers []string

	mu    sync.Mutex
	next  int
	tried int
}

func (h *HostsInOrder) Init([]string) error { return nil }
func (h *HostsInOrder) Len() int            { return len(h.Servers) }

// Next is the next server, and whether every one has been tried since the
// last connection.
func (h *HostsInOrder) Next() (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.Servers[h.next]
	h.next = (h.next + 1) % len(h.Servers)
	h.tried++
	return s, h.tried > len(h.Servers)
}

func (h *HostsInOrder) Connected() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.tried = 0
}
