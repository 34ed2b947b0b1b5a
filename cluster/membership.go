package cluster

import (
	"context"
	"fmt"
	"maps"
	"net"
	"sort"
	"time"

	"github.com/hashicorp/raft"

	"github.com/armada-orchestrator/armada/fsm"
)

// catchUpLag is how many entries a non-voter may trail the leader's commit
// index and still be promoted.
const catchUpLag = 1024

// reconcileLoop runs the membership reconciler on every gossip event (the
// member loop's sweeps included) and periodically, for as long as this node
// leads.
func (n *Node) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		if err := n.reconcile(ctx); err != nil && ctx.Err() == nil {
			n.log.Warn("reconcile membership", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-n.gsp.events:
		}
	}
}

// reconcile brings the Raft configuration and the node records in line
// with gossip. Every step is idempotent: run it again and nothing changes.
//
//   - alive members not in Raft are added as non-voters;
//   - members that left are removed at once, dead ones after ReapTimeout;
//   - while fewer than Voters voters are alive, a caught-up non-voter is
//     promoted; once there are more voters than wanted, a dead voter is
//     demoted, so a dead voter ends up replaced by a healthy non-voter.
func (n *Node) reconcile(ctx context.Context) error {
	members := n.gsp.snapshot()
	records := map[string]*fsm.Node{}
	n.state.View(func(v *fsm.View) error {
		for _, r := range v.Nodes() {
			records[r.Name] = r
		}
		return nil
	})
	servers, err := n.servers()
	if err != nil {
		return err
	}
	now := n.now()
	deadFor := func(name string, m member) time.Duration {
		if r, ok := records[name]; ok && r.Status == fsm.NodeDead {
			return now.Sub(time.UnixMilli(r.StatusSince))
		}
		return now.Sub(m.Since)
	}
	changed := false
	for _, name := range sortedNames(members) {
		m := members[name]
		if m.Meta.Raft == "" || name == n.cfg.Name {
			continue
		}
		srv, in := servers[name]
		switch {
		case m.Status == fsm.NodeAlive && (!in || string(srv.Address) != m.Meta.Raft):
			n.log.Info("adding raft non-voter", "node", name, "addr", m.Meta.Raft, "reason", "alive in gossip, not in raft")
			n.hb.clear(name) // a new replication starts without failures
			err = n.raft.AddNonvoter(raft.ServerID(name), raft.ServerAddress(m.Meta.Raft), 0, 5*time.Second).Error()
		case m.Status == fsm.NodeLeft && in:
			n.log.Info("removing raft server", "node", name, "reason", "left the cluster")
			err = n.raft.RemoveServer(raft.ServerID(name), 0, 5*time.Second).Error()
		case m.Status == fsm.NodeDead && in && deadFor(name, m) >= n.cfg.ReapTimeout:
			n.log.Info("removing raft server", "node", name, "reason", fmt.Sprintf("dead for %s (reap timeout %s)", deadFor(name, m).Round(time.Second), n.cfg.ReapTimeout))
			err = n.raft.RemoveServer(raft.ServerID(name), 0, 5*time.Second).Error()
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("change raft membership of %s: %w", name, err)
		}
		changed = true
	}
	if changed {
		if servers, err = n.servers(); err != nil {
			return err
		}
	}
	if err := n.balanceVoters(ctx, members, servers); err != nil {
		return err
	}
	if servers, err = n.servers(); err != nil {
		return err
	}
	return n.syncNodes(ctx, members, records, servers)
}

func (n *Node) servers() (map[string]raft.Server, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("raft configuration: %w", err)
	}
	out := map[string]raft.Server{}
	for _, s := range f.Configuration().Servers {
		out[string(s.ID)] = s
	}
	return out, nil
}

func (n *Node) balanceVoters(ctx context.Context, members map[string]member, servers map[string]raft.Server) error {
	alive := func(name string) bool {
		m, ok := members[name]
		return name == n.cfg.Name || (ok && m.Status == fsm.NodeAlive)
	}
	voters, healthy := 0, 0
	for name, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
			if alive(name) {
				healthy++
			}
		}
	}
	if healthy < n.cfg.Voters {
		for _, name := range sortedNames(servers) {
			s := servers[name]
			m := members[name]
			if s.Suffrage != raft.Nonvoter || !alive(name) || m.Meta.Role == RoleWorker {
				continue
			}
			if !n.caughtUp(ctx, m) {
				n.log.Info("not promoting non-voter yet", "node", name, "reason", "still catching up")
				continue
			}
			n.log.Info("promoting non-voter", "node", name, "reason", fmt.Sprintf("%d healthy voters, want %d", healthy, n.cfg.Voters))
			if err := n.raft.AddVoter(s.ID, s.Address, 0, 5*time.Second).Error(); err != nil {
				return fmt.Errorf("promote %s: %w", name, err)
			}
			return nil // one change per sweep; the next sweep sees the new configuration
		}
		return nil
	}
	if voters > n.cfg.Voters {
		for _, name := range sortedNames(servers) {
			s := servers[name]
			if s.Suffrage != raft.Voter || name == n.cfg.Name || members[name].Status != fsm.NodeDead {
				continue
			}
			n.log.Info("demoting dead voter", "node", name, "reason", fmt.Sprintf("%d healthy voters replace it", healthy))
			if err := n.raft.DemoteVoter(s.ID, 0, 5*time.Second).Error(); err != nil {
				return fmt.Errorf("demote %s: %w", name, err)
			}
			return nil
		}
		// No voter is dead, yet there are too many: a dead voter came back
		// after its replacement was promoted. Demote the last one by name
		// (never this leader) so the group keeps the size asked for.
		names := sortedNames(servers)
		for i := len(names) - 1; i >= 0; i-- {
			name := names[i]
			if s := servers[name]; s.Suffrage == raft.Voter && name != n.cfg.Name {
				n.log.Info("demoting voter", "node", name, "reason", fmt.Sprintf("%d voters, want %d", voters, n.cfg.Voters))
				if err := n.raft.DemoteVoter(s.ID, 0, 5*time.Second).Error(); err != nil {
					return fmt.Errorf("demote %s: %w", name, err)
				}
				return nil
			}
		}
	}
	return nil
}

// caughtUp asks a non-voter how far it has applied the log.
func (n *Node) caughtUp(ctx context.Context, m member) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	applied, err := n.fwd.applied(ctx, m.Meta.HTTP)
	if err != nil {
		return false
	}
	return applied+catchUpLag >= n.raft.CommitIndex()
}

// syncNodes writes a node record for every member whose record differs
// from what gossip and Raft say.
func (n *Node) syncNodes(ctx context.Context, members map[string]member, records map[string]*fsm.Node, servers map[string]raft.Server) error {
	for _, name := range sortedNames(members) {
		m := members[name]
		status := m.Status
		if status == fsm.NodeAlive && n.hb.suspect(name, n.now()) {
			status = fsm.NodeSuspect // gossip has not noticed yet; Raft has
		} else if status != fsm.NodeAlive {
			n.hb.clear(name)
		}
		want := fsm.Node{
			Name: name, GossipAddr: m.Addr, RaftAddr: m.Meta.Raft, HTTPAddr: m.Meta.HTTP,
			Server: m.Meta.Role != RoleWorker, Worker: m.Meta.Role != RoleServer,
			Status: status, Labels: m.Meta.Labels, Version: m.Meta.Version,
			Capacity: fsm.Resources{CPUMHz: m.Meta.CPUMHz, MemoryMB: m.Meta.MemoryMB},
		}
		want.Address, _, _ = net.SplitHostPort(m.Addr)
		switch s, in := servers[name]; {
		case m.Meta.Role == RoleWorker:
			want.Role = fsm.RoleWorker
		case in && s.Suffrage == raft.Voter:
			want.Role = fsm.RoleVoter
		case !in && (status == fsm.NodeLeft || status == fsm.NodeDead) && records[name] != nil &&
			(records[name].Role == fsm.RoleVoter || records[name].Role == fsm.RoleNonvoter):
			want.Role = records[name].Role // it left, or died: the role it had
		default:
			// A non-voter, or a server Raft has not added yet: it joins as
			// a non-voter.
			want.Role = fsm.RoleNonvoter
		}
		old, ok := records[name]
		needPorts := want.Worker && m.Meta.Ports != "" && (!ok || old.PortsRange == "")
		if ok {
			want.Drain = old.Drain
			if sameNode(old, &want) && !needPorts {
				continue
			}
		}
		var cmd fsm.Command = &fsm.NodeUpsert{Node: want}
		if needPorts {
			// The ports range goes in with the record, so no plan ever
			// sees the node alive but without ports to give.
			cmd = &fsm.Batch{Cmds: []fsm.Command{cmd, &fsm.NodeReport{Name: name, PortsRange: m.Meta.Ports}}}
		}
		if _, err := n.Apply(ctx, cmd); err != nil {
			return fmt.Errorf("record node %s: %w", name, err)
		}
	}
	// Records gossip no longer knows of: a member the leader has never
	// heard from (it died before this leader's time) is dead; dead and
	// left records go after the reap timeout.
	for name, r := range records {
		if _, ok := members[name]; ok {
			if !(r.Status == fsm.NodeDead || r.Status == fsm.NodeLeft) || n.now().Sub(time.UnixMilli(r.StatusSince)) < n.cfg.ReapTimeout {
				continue
			}
		} else if r.Status != fsm.NodeDead && r.Status != fsm.NodeLeft {
			if n.leadingFor() < 10*n.cfg.ProbeInterval {
				continue // give gossip time to hear from everyone first
			}
			up := *r
			up.Status = fsm.NodeDead
			if _, err := n.Apply(ctx, &fsm.NodeUpsert{Node: up}); err != nil {
				return fmt.Errorf("record node %s: %w", name, err)
			}
			continue
		} else if n.now().Sub(time.UnixMilli(r.StatusSince)) < n.cfg.ReapTimeout {
			continue
		}
		if _, in := servers[name]; in && name != n.cfg.Name {
			if err := n.raft.RemoveServer(raft.ServerID(name), 0, 5*time.Second).Error(); err != nil {
				return fmt.Errorf("remove %s: %w", name, err)
			}
		}
		n.log.Info("reaping node", "node", name, "status", r.Status, "reason", "past the reap timeout")
		if _, err := n.Apply(ctx, &fsm.NodeRemove{Name: name}); err != nil {
			return fmt.Errorf("reap node %s: %w", name, err)
		}
		n.gsp.forget(name)
	}
	return nil
}

// sameNode compares the fields the reconciler owns.
func sameNode(a, b *fsm.Node) bool {
	return a.Name == b.Name && a.Address == b.Address && a.GossipAddr == b.GossipAddr && a.RaftAddr == b.RaftAddr &&
		a.HTTPAddr == b.HTTPAddr && a.Role == b.Role && a.Server == b.Server && a.Worker == b.Worker &&
		a.Status == b.Status && a.Drain == b.Drain && maps.Equal(a.Labels, b.Labels) && a.Capacity == b.Capacity &&
		a.Version == b.Version
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func (n *Node) leadingFor() time.Duration {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.now().Sub(n.leadStart)
}
