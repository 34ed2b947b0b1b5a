// Package e2e runs the real armada binary as separate processes and checks
// what an operator would see: clusters forming over gossip and Raft,
// leaders dying and coming back, the CLI and the HTTP API.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/internal/sandbox"
)

// armadaBin is the binary TestMain builds once for the whole package.
var armadaBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "armada-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	armadaBin = filepath.Join(dir, "armada")
	build := exec.Command("go", "build", "-o", armadaBin, "./cmd/armada")
	build.Dir = root
	build.Env = childEnv()
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/armada in %s: %v\n%s", root, err, out)
		return 1
	}
	return m.Run()
}

// moduleRoot is the directory of the go.mod this package belongs to.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside a module")
	}
	return filepath.Dir(gomod), nil
}

// childEnv is this process's environment without ARMADA_* variables, so
// that nothing from the caller's shell leaks into the flags of a child
// (every armada flag can be set as ARMADA_<FLAG>).
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ARMADA_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// waitFor polls fn every 50ms until it returns nil, and fails the test
// with fn's last error once timeout has passed. It returns how long it
// took.
func waitFor(t testing.TB, timeout time.Duration, fn func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := fn()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- ports ----

var (
	portsMu   sync.Mutex
	usedPorts = map[int]bool{}
)

// freePort returns a loopback port that is free for both TCP and UDP
// (gossip binds both) and that this process has not handed out before.
func freePort(t testing.TB) int {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("pick a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, uerr := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		l.Close()
		if uerr != nil {
			continue
		}
		u.Close()
		if usedPorts[port] {
			continue
		}
		usedPorts[port] = true
		return port
	}
	t.Fatalf("no loopback port free for both TCP and UDP")
	return 0
}

func freeAddr(t testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
}

// ---- cluster and nodes ----

// Cluster is the set of armada processes one test runs. Cleanup kills
// every process and, when the test failed, prints the tail of each log.
type Cluster struct {
	t     *testing.T
	dir   string
	nodes []*Node
	// Extra are flags every node this cluster prepares afterwards gets
	// (NewNode copies them into Node.Extra), e.g. --lost-grace 30s.
	Extra []string
	// Token, when set, is the API token every node this cluster prepares
	// afterwards requires (--token), and that Node.Do sends.
	Token string
}

// NewCluster prepares an empty cluster for t.
func NewCluster(t *testing.T) *Cluster {
	t.Helper()
	// TempDir first: cleanups run last-in first-out, so the processes are
	// killed before their data directories are removed.
	c := &Cluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.cleanup)
	return c
}

func (c *Cluster) cleanup() {
	for _, n := range c.nodes {
		n.kill()
	}
	if !c.t.Failed() {
		return
	}
	for _, n := range c.nodes {
		for i, path := range n.logs {
			c.t.Logf("---- %s run %d: last lines of %s ----\n%s", n.Name, i+1, path, tail(path, 80))
		}
	}
}

// Node is one armada process (and its restarts: same flags, same data
// directory).
type Node struct {
	c          *Cluster
	Name       string
	DataDir    string
	HTTPAddr   string
	GossipAddr string
	RaftAddr   string
	SDKAddr    string
	Seeds      []string
	Extra      []string // more flags for `armada join`
	Token      string   // the API token (Cluster.Token)
	// Sandbox, when set, runs the node inside that systemd sandbox (through
	// nsenter) from Bin, a copy of the binary outside /tmp.
	Sandbox *sandbox.Sandbox
	Bin     string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	logs    []string // one log file per run
}

// NewNode prepares a node with fresh loopback ports and a data directory;
// it does not start it.
func (c *Cluster) NewNode(name string, seeds ...string) *Node {
	c.t.Helper()
	n := &Node{
		c: c, Name: name, DataDir: filepath.Join(c.dir, name+"-data"),
		HTTPAddr: freeAddr(c.t), GossipAddr: freeAddr(c.t), RaftAddr: freeAddr(c.t), SDKAddr: freeAddr(c.t), Seeds: seeds,
		Extra: slices.Clone(c.Extra), Token: c.Token,
	}
	c.nodes = append(c.nodes, n)
	return n
}

// StartNode prepares and starts a node, and waits until its API answers.
func (c *Cluster) StartNode(name string, seeds ...string) *Node {
	c.t.Helper()
	n := c.NewNode(name, seeds...)
	n.Start()
	return n
}

// Args are the command-line arguments of `armada join` for this node.
func (n *Node) Args() []string {
	args := []string{"join", "--name", n.Name, "--data-dir", n.DataDir,
		"--http-addr", n.HTTPAddr, "--gossip-addr", n.GossipAddr, "--raft-addr", n.RaftAddr, "--sdk-addr", n.SDKAddr}
	if n.Sandbox == nil && !slices.Contains(n.Extra, "--driver") {
		// Outside a sandbox ships run as child processes even where systemd
		// runs (where auto would pick it, on the host's own systemd).
		args = append(args, "--driver", "exec")
	}
	if !slices.Contains(n.Extra, "--ports-range") {
		// Ship ports above the worker package's test range (20000-20099):
		// go test runs the packages at once, and a worker refuses a port
		// another process holds on the host.
		args = append(args, "--ports-range", "24000-29999")
	}
	args = append(args, n.Extra...)
	if n.Token != "" {
		args = append(args, "--token", n.Token)
	}
	return append(args, n.Seeds...)
}

// Start runs the node and waits until its HTTP API answers as this node.
// On a first start that loses a port race with another process on the
// machine, it picks new ports and tries again.
func (n *Node) Start() {
	t := n.c.t
	t.Helper()
	first := len(n.logs) == 0
	for attempt := 1; ; attempt++ {
		n.launch()
		err := n.waitUp(30 * time.Second)
		if err == nil {
			return
		}
		if first && attempt < 3 && n.Exited() && strings.Contains(n.Log(), "address already in use") {
			t.Logf("%s: port taken by another process; retrying with new ports", n.Name)
			n.HTTPAddr, n.GossipAddr, n.RaftAddr, n.SDKAddr = freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
			n.DataDir += "-retry" + strconv.Itoa(attempt)
			continue
		}
		t.Fatalf("%s did not come up: %v\n%s", n.Name, err, tail(n.logs[len(n.logs)-1], 40))
	}
}

// Restart starts a node that has exited again, with the same flags and
// data directory.
func (n *Node) Restart() {
	n.c.t.Helper()
	if !n.Exited() {
		n.c.t.Fatalf("restart %s: it is still running", n.Name)
	}
	n.Start()
}

func (n *Node) launch() {
	t := n.c.t
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.exited:
		default:
			t.Fatalf("start %s: already running", n.Name)
		}
	}
	path := filepath.Join(n.c.dir, fmt.Sprintf("%s.run%d.log", n.Name, len(n.logs)+1))
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("create log: %v", err)
	}
	defer f.Close() // the child has its own copy of the descriptor
	fmt.Fprintf(f, "# %s %s\n", armadaBin, strings.Join(n.Args(), " "))
	cmd := exec.Command(armadaBin, n.Args()...)
	if n.Sandbox != nil {
		cmd = n.Sandbox.Command(context.Background(), n.Bin, n.Args()...)
	}
	cmd.Env = childEnv()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", n.Name, err)
	}
	exited := make(chan struct{})
	n.cmd, n.exited, n.waitErr = cmd, exited, nil
	n.logs = append(n.logs, path)
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(exited)
	}()
}

// waitUp polls /healthz until this node answers (with or without a
// leader), or the process exits.
func (n *Node) waitUp(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if n.Exited() {
			return fmt.Errorf("process exited: %v", n.ExitErr())
		}
		r, err := n.Get("/healthz")
		if err == nil {
			var h struct{ Node string }
			if jerr := json.Unmarshal(r.Body, &h); jerr == nil && h.Node == n.Name {
				return nil
			}
			err = fmt.Errorf("/healthz answered %d %s (another process on this port?)", r.Status, r.Body)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer within %s: %v", timeout, last)
}

// Kill sends SIGKILL and waits until the process is gone.
func (n *Node) Kill() {
	t := n.c.t
	t.Helper()
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		t.Fatalf("kill %s: never started", n.Name)
	}
	if n.Sandbox != nil {
		sandbox.KillInner(cmd)
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("kill %s: %v", n.Name, err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still running 10s after SIGKILL", n.Name)
	}
	var ee *exec.ExitError
	if err := n.ExitErr(); errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() != syscall.SIGKILL {
			t.Fatalf("%s ended by %v, not SIGKILL", n.Name, ws.Signal())
		}
	}
}

// kill is the cleanup's Kill: no test assertions.
func (n *Node) kill() {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	if cmd == nil {
		return
	}
	if n.Sandbox != nil {
		sandbox.KillInner(cmd)
	}
	_ = cmd.Process.Kill()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
	}
}

// Exited reports whether the current run has ended.
func (n *Node) Exited() bool {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	if exited == nil {
		return true
	}
	select {
	case <-exited:
		return true
	default:
		return false
	}
}

// WaitExit waits for the process to end by itself and returns its exit
// error (nil for status 0).
func (n *Node) WaitExit(timeout time.Duration) (exited bool, err error) {
	n.mu.Lock()
	done := n.exited
	n.mu.Unlock()
	select {
	case <-done:
		return true, n.ExitErr()
	case <-time.After(timeout):
		return false, nil
	}
}

// ExitErr is the last run's exit error.
func (n *Node) ExitErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.waitErr
}

// Log is the output of the current (last) run.
func (n *Node) Log() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.logs) == 0 {
		return ""
	}
	b, _ := os.ReadFile(n.logs[len(n.logs)-1])
	return string(b)
}

// Runs is how many times the node has been started.
func (n *Node) Runs() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.logs)
}

// BaseURL is the node's API address as the CLI's --addr takes it.
func (n *Node) BaseURL() string { return "http://" + n.HTTPAddr }

func tail(path string, lines int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	var ring []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ring = append(ring, sc.Text())
		if len(ring) > lines {
			ring = ring[1:]
		}
	}
	return strings.Join(ring, "\n")
}

// ---- HTTP ----

var httpClient = &http.Client{Timeout: 20 * time.Second}

// Resp is an HTTP answer, read in full.
type Resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *Resp) String() string {
	return fmt.Sprintf("HTTP %d: %s", r.Status, bytes.TrimSpace(r.Body))
}

// Index is the X-Armada-Index header as a number (0 when absent).
func (r *Resp) Index() uint64 {
	v, _ := strconv.ParseUint(r.Header.Get("X-Armada-Index"), 10, 64)
	return v
}

// Do sends a request to the node's API.
func (n *Node) Do(method, path string, body []byte, ctype string) (*Resp, error) {
	req, err := http.NewRequest(method, n.BaseURL()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if n.Token != "" {
		req.Header.Set("Authorization", "Bearer "+n.Token)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return &Resp{Status: resp.StatusCode, Header: resp.Header, Body: data}, nil
}

// Get is a GET on the node's API.
func (n *Node) Get(path string) (*Resp, error) { return n.Do(http.MethodGet, path, nil, "") }

// Put is a PUT of body on the node's API.
func (n *Node) Put(path string, body []byte, ctype string) (*Resp, error) {
	return n.Do(http.MethodPut, path, body, ctype)
}

// NodeInfo is a node record from /v1/status or /v1/nodes.
type NodeInfo struct {
	Name       string `json:"name"`
	Address    string `json:"address"`
	GossipAddr string `json:"gossip_addr"`
	RaftAddr   string `json:"raft_addr"`
	HTTPAddr   string `json:"http_addr"`
	Role       string `json:"role"`
	Status     string `json:"status"`
	Drain      bool   `json:"drain"`
}

// Status is GET /v1/status.
type Status struct {
	Leader    string     `json:"leader"`
	Term      uint64     `json:"term"`
	Index     uint64     `json:"index"`
	Node      string     `json:"node"`
	ClusterID string     `json:"cluster_id"`
	Nodes     []NodeInfo `json:"nodes"`
}

// NodeByName finds a node record.
func (s *Status) NodeByName(name string) (NodeInfo, bool) {
	for _, n := range s.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return NodeInfo{}, false
}

// Status fetches /v1/status.
func (n *Node) Status() (*Status, error) {
	r, err := n.Get("/v1/status")
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("%s: GET /v1/status: %s", n.Name, r)
	}
	var st Status
	if err := json.Unmarshal(r.Body, &st); err != nil {
		return nil, fmt.Errorf("%s: GET /v1/status: %w: %s", n.Name, err, r.Body)
	}
	return &st, nil
}

// agreedLeader returns the leader every one of nodes reports, or an error
// when one has none or they disagree.
func agreedLeader(nodes ...*Node) (string, error) {
	leader := ""
	for _, n := range nodes {
		st, err := n.Status()
		if err != nil {
			return "", err
		}
		switch {
		case st.Leader == "":
			return "", fmt.Errorf("%s reports no leader", n.Name)
		case leader == "":
			leader = st.Leader
		case st.Leader != leader:
			return "", fmt.Errorf("%s reports leader %q, another node %q", n.Name, st.Leader, leader)
		}
	}
	return leader, nil
}

// checkMembers verifies that every node in nodes reports the leader and
// exactly the members in want, each with its "status/role".
func checkMembers(nodes []*Node, leader string, want map[string]string) error {
	for _, n := range nodes {
		st, err := n.Status()
		if err != nil {
			return err
		}
		if st.Leader != leader {
			return fmt.Errorf("%s reports leader %q, want %q", n.Name, st.Leader, leader)
		}
		got := map[string]string{}
		for _, r := range st.Nodes {
			got[r.Name] = r.Status + "/" + r.Role
		}
		if len(got) != len(want) {
			return fmt.Errorf("%s lists nodes %v, want %v", n.Name, got, want)
		}
		for name, w := range want {
			if got[name] != w {
				return fmt.Errorf("%s lists nodes %v, want %v", n.Name, got, want)
			}
		}
	}
	return nil
}

// waitSingleLeader waits until a one-node cluster leads itself and has
// its cluster identity (and secret key) in place.
func waitSingleLeader(t *testing.T, n *Node, timeout time.Duration) *Status {
	t.Helper()
	var st *Status
	waitFor(t, timeout, func() error {
		var err error
		if st, err = n.Status(); err != nil {
			return err
		}
		if st.Leader != n.Name || st.ClusterID == "" {
			return fmt.Errorf("%s: leader %q, cluster id %q", n.Name, st.Leader, st.ClusterID)
		}
		return nil
	})
	return st
}

// formCluster starts n1 alone, then n2..nN joining through n1's gossip
// address, and waits until every node agrees on a leader and lists every
// node alive as a voter.
func formCluster(t *testing.T, c *Cluster, size int) ([]*Node, string) {
	t.Helper()
	start := time.Now()
	n1 := c.StartNode("n1")
	waitSingleLeader(t, n1, 30*time.Second)
	nodes := []*Node{n1}
	for i := 2; i <= size; i++ {
		nodes = append(nodes, c.StartNode(fmt.Sprintf("n%d", i), n1.GossipAddr))
	}
	want := map[string]string{}
	for _, n := range nodes {
		want[n.Name] = "alive/voter"
	}
	var leader string
	waitFor(t, 60*time.Second, func() error {
		var err error
		if leader, err = agreedLeader(nodes...); err != nil {
			return err
		}
		return checkMembers(nodes, leader, want)
	})
	t.Logf("%d-node cluster formed in %s; leader %s", size, time.Since(start).Round(time.Millisecond), leader)
	return nodes, leader
}

func byName(nodes []*Node, name string) *Node {
	i := slices.IndexFunc(nodes, func(n *Node) bool { return n.Name == name })
	if i < 0 {
		return nil
	}
	return nodes[i]
}

// ---- key space ----

// KV is a key as GET /v1/kv returns it.
type KV struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	ModifyIndex uint64 `json:"modify_index"`
}

// putKV writes key=value through n, retrying while the cluster answers 503
// (no leader, or an election in flight) until timeout. It returns an error
// for any other answer, or when it ran out of time.
func putKV(n *Node, key, value string, timeout time.Duration) (retries int, err error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := n.Put("/v1/kv/"+key, []byte(value), "application/octet-stream")
		switch {
		case err == nil && r.Status/100 == 2:
			return retries, nil
		case err == nil && r.Status != http.StatusServiceUnavailable:
			return retries, fmt.Errorf("PUT %s on %s: %s", key, n.Name, r)
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New(r.String())
			}
			return retries, fmt.Errorf("PUT %s on %s: no success in %s: %v", key, n.Name, timeout, err)
		}
		retries++
		time.Sleep(50 * time.Millisecond)
	}
}

// getKV reads one key from n. consistent asks for a linearizable read.
func getKV(n *Node, key string, consistent bool) (*Resp, *KV, error) {
	path := "/v1/kv/" + key
	if consistent {
		path += "?consistent=true"
	}
	r, err := n.Get(path)
	if err != nil || r.Status != http.StatusOK {
		return r, nil, err
	}
	var kv KV
	if err := json.Unmarshal(r.Body, &kv); err != nil {
		return r, nil, fmt.Errorf("GET %s on %s: %w: %s", key, n.Name, err, r.Body)
	}
	return r, &kv, nil
}

// listKV lists every key under prefix on n.
func listKV(n *Node, prefix string, consistent bool) ([]KV, error) {
	path := "/v1/kv/" + prefix + "?prefix=true"
	if consistent {
		path += "&consistent=true"
	}
	r, err := n.Get(path)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("GET %s on %s: %s", path, n.Name, r)
	}
	var out []KV
	if err := json.Unmarshal(r.Body, &out); err != nil {
		return nil, fmt.Errorf("GET %s on %s: %w", path, n.Name, err)
	}
	return out, nil
}

// sameKVs compares a listing with the expected key → value map.
func sameKVs(got []KV, want map[string]string) error {
	seen := map[string]bool{}
	for _, kv := range got {
		w, ok := want[kv.Key]
		if !ok {
			return fmt.Errorf("unexpected key %q=%q", kv.Key, kv.Value)
		}
		if kv.Value != w {
			return fmt.Errorf("key %q = %q, want %q", kv.Key, kv.Value, w)
		}
		if seen[kv.Key] {
			return fmt.Errorf("key %q listed twice", kv.Key)
		}
		seen[kv.Key] = true
	}
	if len(seen) != len(want) {
		return fmt.Errorf("%d keys listed, want %d", len(seen), len(want))
	}
	return nil
}

// ---- CLI ----

// CLIResult is the outcome of one CLI run.
type CLIResult struct {
	Args           []string
	Stdout, Stderr string
	Code           int
}

func (r CLIResult) String() string {
	return fmt.Sprintf("armada %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.Args, " "), r.Code, r.Stdout, r.Stderr)
}

// runCLI runs the armada binary with args (env adds KEY=VALUE variables)
// and returns its output; it fails the test only when the binary cannot
// be run or does not finish within a minute.
func runCLI(t *testing.T, env []string, args ...string) CLIResult {
	t.Helper()
	return runCLIWithin(t, time.Minute, env, args...)
}

// runCLIWithin is runCLI with another time limit.
func runCLIWithin(t *testing.T, limit time.Duration, env []string, args ...string) CLIResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, armadaBin, args...)
	cmd.Env = childEnv(env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := CLIResult{Args: args, Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case ctx.Err() != nil:
		t.Fatalf("armada %s: did not finish within %s\n%s", strings.Join(args, " "), limit, res)
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	default:
		t.Fatalf("armada %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// mustCLI runs the CLI and fails the test unless it exits 0.
func mustCLI(t *testing.T, env []string, args ...string) CLIResult {
	t.Helper()
	res := runCLI(t, env, args...)
	if res.Code != 0 {
		t.Fatalf("want exit 0\n%s", res)
	}
	return res
}
