package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// armadaNode is one node of the benchmark cluster.
type armadaNode struct {
	name, httpAddr, gossipAddr string
	proc                       *proc
}

// armadaCluster is a 3-node cluster of the real binary on loopback.
type armadaCluster struct {
	nodes []*armadaNode
	poll  *http.Client
}

// nodeStatus is the part of GET /v1/status the benchmark reads.
type nodeStatus struct {
	Leader string `json:"leader"`
	Term   uint64 `json:"term"`
	Index  uint64 `json:"index"`
	Nodes  []struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		Status   string `json:"status"`
		HTTPAddr string `json:"http_addr"`
	} `json:"nodes"`
}

// startArmada starts n nodes of bin under dir: the first bootstraps the
// cluster and the others join it through its gossip address. extra are
// more flags for every node's `armada join`. The cluster it returns is
// never nil, so that the caller can stop what started.
func startArmada(bin, dir string, n int, extra ...string) (*armadaCluster, error) {
	c := &armadaCluster{poll: &http.Client{Timeout: time.Second}}
	ports, err := freePorts(4 * n)
	if err != nil {
		return c, err
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			return c, fmt.Errorf("data dir: %w", err)
		}
		node := &armadaNode{name: name, gossipAddr: loopback(ports[4*i]), httpAddr: loopback(ports[4*i+2])}
		args := []string{"join", "--name", name, "--data-dir", data,
			"--gossip-addr", node.gossipAddr, "--raft-addr", loopback(ports[4*i+1]), "--http-addr", node.httpAddr,
			"--sdk-addr", loopback(ports[4*i+3])}
		args = append(args, extra...)
		if i > 0 {
			args = append(args, c.nodes[0].gossipAddr)
		}
		node.proc, err = startProc(name, bin, args, filepath.Join(dir, name+".log"))
		if err != nil {
			return c, err
		}
		c.nodes = append(c.nodes, node)
	}
	return c, nil
}

// stop ends every node process.
func (c *armadaCluster) stop() {
	for _, n := range c.nodes {
		n.proc.stop(5 * time.Second)
	}
}

func (c *armadaCluster) status(ctx context.Context, n *armadaNode) (nodeStatus, error) {
	var st nodeStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := c.poll.Do(req)
	if err != nil {
		return st, fmt.Errorf("%s status: %w", n.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s status: HTTP %d", n.name, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("%s status: %w", n.name, err)
	}
	return st, nil
}

// healthy checks that every node answers, all name the same leader, and
// every node sees all of them as alive voters. It returns the leader.
func (c *armadaCluster) healthy(ctx context.Context) (*armadaNode, error) {
	leader, leaderHTTP := "", ""
	for _, n := range c.nodes {
		if !n.proc.running() {
			return nil, fmt.Errorf("%s: %w", n.name, errExited)
		}
		st, err := c.status(ctx, n)
		if err != nil {
			return nil, err
		}
		if st.Leader == "" || (leader != "" && st.Leader != leader) {
			return nil, fmt.Errorf("%s sees leader %q, others %q", n.name, st.Leader, leader)
		}
		leader = st.Leader
		voters := 0
		for _, m := range st.Nodes {
			if m.Role == "voter" && m.Status == "alive" {
				voters++
			}
			if m.Name == leader {
				leaderHTTP = m.HTTPAddr
			}
		}
		if voters != len(c.nodes) {
			return nil, fmt.Errorf("%s sees %d alive voters, want %d", n.name, voters, len(c.nodes))
		}
	}
	return c.node(leader, leaderHTTP)
}

// node finds the benchmark's node called name, checking that the cluster
// advertises the HTTP address it was started with.
func (c *armadaCluster) node(name, httpAddr string) (*armadaNode, error) {
	for _, n := range c.nodes {
		if n.name == name && n.httpAddr == httpAddr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("leader %q at http_addr %q is not one of the benchmark's nodes", name, httpAddr)
}

// waitHealthy polls until healthy passes or timeout.
func (c *armadaCluster) waitHealthy(ctx context.Context, timeout time.Duration) (*armadaNode, error) {
	deadline := time.Now().Add(timeout)
	for {
		leader, err := c.healthy(ctx)
		if err == nil || errors.Is(err, errExited) {
			return leader, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("cluster not healthy after %s: %w", timeout, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// waitCaughtUp waits until n has applied everything the leader had
// applied when the wait began.
func (c *armadaCluster) waitCaughtUp(ctx context.Context, n, leader *armadaNode, timeout time.Duration) error {
	lst, err := c.status(ctx, leader)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.status(ctx, n)
		if err == nil && st.Index >= lst.Index {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has not caught up with index %d after %s (at %d, err %v)", n.name, lst.Index, timeout, st.Index, err)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// logTails is the end of every node's log, for setup failures.
func (c *armadaCluster) logTails() {
	for _, n := range c.nodes {
		fmt.Fprintf(os.Stderr, "--- last lines of %s's log (%s) ---\n%s\n", n.name, n.proc.logPath, n.proc.logTail(15))
	}
}

func (c *armadaCluster) httpAddrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.httpAddr
	}
	return addrs
}

// watch lists the node processes, leader first, then the driver, for CPU
// accounting.
func (c *armadaCluster) watch(leader *armadaNode) []watched {
	w := []watched{{leader.name, leader.proc.pid()}}
	for _, n := range c.nodes {
		if n != leader {
			w = append(w, watched{n.name, n.proc.pid()})
		}
	}
	return append(w, watched{"driver", os.Getpid()})
}

// procs lists the processes in start order.
func (c *armadaCluster) procs() []watched {
	w := make([]watched, len(c.nodes))
	for i, n := range c.nodes {
		w[i] = watched{n.name, n.proc.pid()}
	}
	return w
}
