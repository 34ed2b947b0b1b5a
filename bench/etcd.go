package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// etcdMember is one member of the reference etcd cluster.
type etcdMember struct {
	name, clientAddr string
	proc             *proc
}

// etcdCluster is a 3-member etcd cluster on loopback, for reference.
type etcdCluster struct {
	members []*etcdMember
	poll    *http.Client
}

// etcdInstalled reports whether bin exists; one that exists but does not
// run is an error, not a missing reference.
func etcdInstalled(bin string) (bool, error) {
	if _, err := os.Stat(bin); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err := exec.Command(bin, "--version").Run(); err != nil {
		return false, fmt.Errorf("etcd at %s does not run: %w", bin, err)
	}
	return true, nil
}

// etcdVersion is the first line of `etcd --version`.
func etcdVersion(bin string) string {
	out, _ := exec.Command(bin, "--version").Output()
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// startEtcd starts n etcd members of bin under dir as one new cluster. The
// cluster it returns is never nil, so that the caller can stop what started.
func startEtcd(bin, dir string, n int) (*etcdCluster, error) {
	c := &etcdCluster{poll: &http.Client{Timeout: time.Second}}
	ports, err := freePorts(2 * n)
	if err != nil {
		return c, err
	}
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("e%d=http://%s", i+1, loopback(ports[2*i+1])))
	}
	for i := range n {
		name := fmt.Sprintf("e%d", i+1)
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			return c, fmt.Errorf("etcd data dir: %w", err)
		}
		client, peer := "http://"+loopback(ports[2*i]), "http://"+loopback(ports[2*i+1])
		args := []string{"--name", name, "--data-dir", data, "--logger", "zap",
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", "armada-bench"}
		m := &etcdMember{name: name, clientAddr: loopback(ports[2*i])}
		m.proc, err = startProc(name, bin, args, filepath.Join(dir, name+".log"))
		if err != nil {
			return c, err
		}
		c.members = append(c.members, m)
	}
	return c, nil
}

func (c *etcdCluster) stop() {
	for _, m := range c.members {
		m.proc.stop(5 * time.Second)
	}
}

// memberStatus is the part of POST /v3/maintenance/status the benchmark
// reads (the gateway sends 64-bit ids as strings).
type memberStatus struct {
	Header struct {
		MemberID string `json:"member_id"`
	} `json:"header"`
	Leader string `json:"leader"`
}

func (c *etcdCluster) status(ctx context.Context, m *etcdMember) (memberStatus, error) {
	var st memberStatus
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+m.clientAddr+"/v3/maintenance/status", bytes.NewReader([]byte("{}")))
	if err != nil {
		return st, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.poll.Do(req)
	if err != nil {
		return st, fmt.Errorf("%s status: %w", m.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s status: HTTP %d", m.name, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("%s status: %w", m.name, err)
	}
	return st, nil
}

// leader checks that every member answers and names the same leader, and
// returns that leader.
func (c *etcdCluster) leader(ctx context.Context) (*etcdMember, error) {
	ids := map[string]*etcdMember{}
	leader := ""
	for _, m := range c.members {
		if !m.proc.running() {
			return nil, fmt.Errorf("%s: %w", m.name, errExited)
		}
		st, err := c.status(ctx, m)
		if err != nil {
			return nil, err
		}
		if st.Leader == "" || st.Leader == "0" || (leader != "" && st.Leader != leader) {
			return nil, fmt.Errorf("%s sees leader %q, others %q", m.name, st.Leader, leader)
		}
		leader = st.Leader
		ids[st.Header.MemberID] = m
	}
	if m, ok := ids[leader]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("leader %s is not a member", leader)
}

// waitLeader polls until every member agrees on a leader, or timeout.
func (c *etcdCluster) waitLeader(ctx context.Context, timeout time.Duration) (*etcdMember, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := c.leader(ctx)
		if err == nil || errors.Is(err, errExited) {
			return m, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("etcd has no agreed leader after %s: %w", timeout, err)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func (c *etcdCluster) logTails() {
	for _, m := range c.members {
		fmt.Fprintf(os.Stderr, "--- last lines of %s's log (%s) ---\n%s\n", m.name, m.proc.logPath, m.proc.logTail(15))
	}
}

// watch lists the member processes, leader first, then the driver, for
// CPU accounting.
func (c *etcdCluster) watch(leader *etcdMember) []watched {
	w := []watched{{leader.name, leader.proc.pid()}}
	for _, m := range c.members {
		if m != leader {
			w = append(w, watched{m.name, m.proc.pid()})
		}
	}
	return append(w, watched{"driver", os.Getpid()})
}

// procs lists the processes in start order.
func (c *etcdCluster) procs() []watched {
	w := make([]watched, len(c.members))
	for i, m := range c.members {
		w[i] = watched{m.name, m.proc.pid()}
	}
	return w
}
