package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
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

// The etcd client figure: clientv3 (gRPC) clients spread over the
// servers, putting or getting their own key — against the 3-member etcd
// cluster and against the etcd adapters of a 3-node Armada of the real
// binary, in the same run.

// etcdAPITargetRatio is the target: Armada's etcd adapter at
// least this many times etcd's puts/s at 64 clients, with a p99 no worse.
const etcdAPITargetRatio = 2.0

// etcdAPIConns is the most clientv3 clients (gRPC connections) a row
// opens; its workers share them.
const etcdAPIConns = 8

var etcdServing = regexp.MustCompile(`msg="serving etcd v3" .*addr=(\S+)`)

// etcdAPILoad opens min(n, etcdAPIConns) clientv3 clients, client i on
// addrs[i % len(addrs)], for n workers — worker w on client w %
// etcdAPIConns — and puts each worker's key bench/w<w>.
func etcdAPILoad(ctx context.Context, addrs []string, n int, value []byte) (adapterClients, error) {
	clients := make([]*clientv3.Client, 0, etcdAPIConns)
	closeAll := func() {
		for _, c := range clients {
			c.Close()
		}
	}
	for i := range min(n, etcdAPIConns) {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + addrs[i%len(addrs)]}, DialTimeout: 10 * time.Second,
			Logger: zap.NewNop()})
		if err != nil {
			closeAll()
			return adapterClients{}, fmt.Errorf("etcd client: %w", err)
		}
		clients = append(clients, c)
	}
	val := string(value)
	key := func(w int) string { return "bench/w" + strconv.Itoa(w) }
	put := func(ctx context.Context, worker, _ int) error {
		_, err := clients[worker%len(clients)].Put(ctx, key(worker), val)
		return err
	}
	for w := range n {
		if err := put(ctx, w, 0); err != nil {
			closeAll()
			return adapterClients{}, fmt.Errorf("put %s: %w", key(w), err)
		}
	}
	get := func(ctx context.Context, worker, _ int) error {
		resp, err := clients[worker%len(clients)].Get(ctx, key(worker)) // linearizable: clientv3's default
		if err == nil && (len(resp.Kvs) != 1 || len(resp.Kvs[0].Value) != len(value)) {
			err = fmt.Errorf("get %s: %d keys, want 1 of %d bytes", key(worker), len(resp.Kvs), len(value))
		}
		return err
	}
	return adapterClients{write: put, read: get, close: closeAll}, nil
}

// runEtcdAPIReference measures the 3-member etcd cluster through clientv3.
func runEtcdAPIReference(ctx context.Context, cfg config, dir string, value []byte) (res []loadResult, err error) {
	etcdBin, err := filepath.EvalSymlinks(cfg.etcd)
	if err != nil {
		return nil, fmt.Errorf("etcd binary: %w", err)
	}
	slog.Info("starting a 3-member etcd cluster for the client figure", "dir", dir)
	c, err := startEtcd(etcdBin, dir, 3)
	defer stopAfter(ctx, &err, c.logTails, c.stop)
	var leader *etcdMember
	if err == nil {
		leader, err = c.waitLeader(ctx, 60*time.Second)
	}
	if err != nil {
		return nil, err
	}
	var addrs []string
	li := 0
	for i, m := range c.members {
		addrs = append(addrs, m.clientAddr)
		if m == leader {
			li = i
		}
	}
	return runAdapterRows(ctx, cfg, "etcd", "all 3 members, clientv3", leaderFirst(addrs, li), c.watch(leader), etcdAPILoad, value)
}

// runEtcdAPI runs the etcd client part: the reference when installed,
// then Armada's etcd adapter.
func runEtcdAPI(ctx context.Context, cfg config, bin, dir string, value []byte) (*adapterBench, error) {
	ab := &adapterBench{
		title:      "etcd client: Put and Get",
		refName:    "etcd",
		writeOp:    "Put",
		readOp:     "Get",
		target:     etcdAPITargetRatio,
		p99NoWorse: true,
		about: fmt.Sprintf("clientv3 clients, `Put` or `Get` of their own key: a 3-member etcd cluster (etcd %s) and the "+
			"etcd adapters (`--etcd-addr`) of a 3-node Armada. %s `Get` is clientv3's default, a linearizable read: etcd "+
			"and Armada's adapter both confirm it through the leader (read index) before answering.",
			orUnknown(strings.TrimPrefix(etcdVersion(cfg.etcd), "etcd Version: ")),
			rowsText(cfg, len(value), fmt.Sprintf("The clients of a row share at most %d clientv3 (gRPC) connections — "+
				"client w on connection w mod %d, connection i on server i mod 3 (24, 24 and 16 of 64 clients), "+
				"%s.", etcdAPIConns, etcdAPIConns, leaderFirstText))),
	}
	ok, err := etcdInstalled(cfg.etcd)
	if err != nil {
		return nil, err
	}
	return ab.run(cfg.adapterRounds, ok, cfg.etcd, func(round int) ([]loadResult, error) {
		return runEtcdAPIReference(ctx, cfg, filepath.Join(dir, roundDir("etcd-api", round)), value)
	}, func(round int) ([]loadResult, error) {
		return runAdapterArmada(ctx, cfg, bin, filepath.Join(dir, roundDir("armada-etcd", round)), "--etcd-addr", etcdServing,
			"all 3 nodes' etcd adapters", etcdAPILoad, value)
	})
}
