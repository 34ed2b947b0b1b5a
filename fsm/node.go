package fsm

func (c *NodeUpsert) apply(t *txn) *Result {
	n := c.Node
	if n.Name == "" || len(n.Name) > 256 {
		return fail(errf(ErrInvalid, "name", "node name must be 1..256 bytes"))
	}
	if old, ok := getJSON[Node](t.b(bNodes), []byte(n.Name)); ok {
		n.StatusSince = old.StatusSince
		// Drain is the operator's and the rest the worker's and the
		// scheduler's: gossip knows none of them.
		n.Allocated, n.Ships, n.Drain = old.Allocated, old.Ships, old.Drain
		n.PortsRange, n.HostPorts, n.UsedPorts = old.PortsRange, old.HostPorts, old.UsedPorts
		if old.Status != n.Status {
			n.StatusSince = c.Now
		}
		n.DownSince = old.DownSince
		if old.Status == NodeLeft && n.Status == NodeAlive {
			n.Drain = false // a node that left and joins again starts afresh
		}
	} else {
		n.StatusSince, n.Drain = c.Now, false
	}
	switch {
	case n.Status == NodeAlive:
		n.DownSince = 0
	case n.DownSince == 0:
		n.DownSince = c.Now
	}
	n.Updated = c.Now
	t.putJSON(bNodes, []byte(n.Name), &n)
	t.changed("node", n.Name, "put")
	return &Result{Node: &n}
}

func (c *NodeRemove) apply(t *txn) *Result {
	if t.b(bNodes).Get([]byte(c.Name)) == nil {
		return fail(errf(ErrNotFound, "name", "node %q not found", c.Name))
	}
	// Ships still on a node that goes are lost first, so that nothing
	// holds resources or ports on a node that no longer exists.
	t.loseShips(c.Name, "node "+c.Name+" was removed", true)
	t.flushNodes()
	t.del(bNodes, []byte(c.Name))
	t.changed("node", c.Name, "delete")
	// Its Redis adapter's address goes too: PUBLISH fans out to the
	// recorded addresses.
	if t.b(bRedisNodes).Get([]byte(c.Name)) != nil {
		t.del(bRedisNodes, []byte(c.Name))
		t.changed("redis_node", c.Name, "delete")
	}
	return &Result{Deleted: 1}
}

func (c *ClusterInit) apply(t *txn) *Result {
	m := t.b(bMeta)
	if m.Get(kKey) != nil {
		return &Result{}
	}
	if len(c.Key) != 32 || c.ClusterID == "" {
		return fail(errf(ErrInvalid, "key", "cluster key must be 32 bytes and the id non-empty"))
	}
	t.put(bMeta, kKey, c.Key)
	t.put(bMeta, kClusterID, []byte(c.ClusterID))
	t.changed("cluster", c.ClusterID, "put")
	return &Result{}
}
