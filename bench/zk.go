package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	gozk "github.com/go-zookeeper/zk"
)

// The ZooKeeper write figure: 64 go-zookeeper clients, each on its own
// session spread evenly over the 3 members, each setting its own znode to
// a 256-byte value as fast as its answers come back — against a 3-member
// ZooKeeper 3.8 (the Debian package) and against the ZooKeeper adapter of
// a 3-node Armada of the real binary, in the same run.

// zkTargetRatio is the target: Armada's adapter at least this many
// times ZooKeeper's writes/s.
const zkTargetRatio = 3.0

// zkClients is the number of concurrent clients of the ZooKeeper rows.
const zkClients = 64

// zkJar is the Debian package's jar; its absence skips the reference.
const zkJar = "/usr/share/java/zookeeper.jar"

// adapterBench is what one protocol adapter's part measured: the adapter
// of a 3-node Armada against the reference server, in the same run.
type adapterBench struct {
	title, about string      // the section's title and how it was measured
	refName      string      // the reference, by name
	target       float64     // Armada / reference to reach; 0: the ratio is only reported
	reference    *loadResult // nil when the reference is not installed
	armada       loadResult
}

type zkBench = adapterBench

type zkLogger struct{}

func (zkLogger) Printf(string, ...any) {}

// zkClassPath is the Debian zookeeper package's class path.
func zkClassPath() string {
	jars, _ := filepath.Glob("/usr/share/java/*.jar")
	return "/etc/zookeeper/conf:" + strings.Join(jars, ":")
}

// zkMember is one member of the reference ensemble.
type zkMember struct {
	name, clientAddr string
	proc             *proc
}

// startZooKeeper starts a 3-member ZooKeeper ensemble under dir. The
// members it returns are never nil, so that the caller can stop what
// started.
func startZooKeeper(dir string) ([]*zkMember, error) {
	ports, err := freePorts(9)
	if err != nil {
		return nil, err
	}
	var servers []string
	for i := range 3 {
		servers = append(servers, fmt.Sprintf("server.%d=127.0.0.1:%d:%d", i+1, ports[3*i+1], ports[3*i+2]))
	}
	var members []*zkMember
	for i := range 3 {
		name := fmt.Sprintf("z%d", i+1)
		data := filepath.Join(dir, name)
		if err := os.MkdirAll(data, 0o700); err != nil {
			return members, fmt.Errorf("zookeeper data dir: %w", err)
		}
		if err := os.WriteFile(filepath.Join(data, "myid"), []byte(fmt.Sprint(i+1)), 0o600); err != nil {
			return members, fmt.Errorf("zookeeper myid: %w", err)
		}
		cfg := fmt.Sprintf("tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"+
			"maxClientCnxns=0\nadmin.enableServer=false\n4lw.commands.whitelist=*\n%s\n", data, ports[3*i], strings.Join(servers, "\n"))
		cfgPath := filepath.Join(data, "zoo.cfg")
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return members, fmt.Errorf("zookeeper config: %w", err)
		}
		m := &zkMember{name: name, clientAddr: loopback(ports[3*i])}
		m.proc, err = startProc(name, "java", []string{"-Xmx1g", "-cp", zkClassPath(),
			"org.apache.zookeeper.server.quorum.QuorumPeerMain", cfgPath}, filepath.Join(dir, name+".log"))
		if err != nil {
			return members, err
		}
		members = append(members, m)
	}
	return members, nil
}

// zkMode asks a server its mode with the srvr four-letter word.
func zkMode(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return "", err
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if mode, ok := strings.CutPrefix(sc.Text(), "Mode: "); ok {
			return mode, nil
		}
	}
	return "", fmt.Errorf("%s: no mode in srvr", addr)
}

// waitZKLeader waits until every address answers and one is the leader,
// and returns its index.
func waitZKLeader(ctx context.Context, addrs []string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		leader, err := -1, error(nil)
		for i, a := range addrs {
			mode, merr := zkMode(a)
			if merr != nil {
				err = merr
				break
			}
			if mode == "leader" {
				leader = i
			}
		}
		if err == nil && leader >= 0 {
			return leader, nil
		}
		if err == nil {
			err = errors.New("no member leads")
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("no ZooKeeper leader after %s: %w", timeout, err)
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return -1, err
		}
	}
}

// zkLoad opens one session per client on addrs[client % len(addrs)],
// creates each client's znode, and returns the put function setting it,
// and a function closing the sessions.
func zkLoad(addrs []string, value []byte) (putFunc, func(), error) {
	conns := make([]*gozk.Conn, zkClients)
	closeAll := func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	for i := range conns {
		c, _, err := gozk.Connect([]string{addrs[i%len(addrs)]}, 10*time.Second, gozk.WithLogger(zkLogger{}))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("zookeeper client: %w", err)
		}
		conns[i] = c
	}
	if _, err := conns[0].Create("/bench", nil, 0, gozk.WorldACL(gozk.PermAll)); err != nil && !errors.Is(err, gozk.ErrNodeExists) {
		closeAll()
		return nil, nil, fmt.Errorf("create /bench: %w", err)
	}
	for i, c := range conns {
		if _, err := c.Create(fmt.Sprintf("/bench/w%d", i), value, 0, gozk.WorldACL(gozk.PermAll)); err != nil && !errors.Is(err, gozk.ErrNodeExists) {
			closeAll()
			return nil, nil, fmt.Errorf("create /bench/w%d: %w", i, err)
		}
	}
	put := func(_ context.Context, worker, _ int) error {
		_, err := conns[worker].Set(fmt.Sprintf("/bench/w%d", worker), value, -1)
		return err
	}
	return put, closeAll, nil
}

// runZKReference measures the 3-member ZooKeeper ensemble.
func runZKReference(ctx context.Context, cfg config, dir string, value []byte) (res loadResult, err error) {
	slog.Info("starting a 3-member ZooKeeper ensemble", "dir", dir)
	members, err := startZooKeeper(dir)
	defer func() {
		for _, m := range members {
			if err != nil && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "--- last lines of %s's log ---\n%s\n", m.name, m.proc.logTail(15))
			}
			m.proc.stop(5 * time.Second)
		}
	}()
	if err != nil {
		return res, err
	}
	var addrs []string
	for _, m := range members {
		addrs = append(addrs, m.clientAddr)
	}
	leader, err := waitZKLeader(ctx, addrs, 90*time.Second)
	if err != nil {
		return res, err
	}
	put, closeAll, err := zkLoad(addrs, value)
	if err != nil {
		return res, err
	}
	defer closeAll()
	procs := []watched{{members[leader].name, members[leader].proc.pid()}}
	for i, m := range members {
		if i != leader {
			procs = append(procs, watched{m.name, m.proc.pid()})
		}
	}
	procs = append(procs, watched{"driver", os.Getpid()})
	return runLoad(ctx, loadSpec{system: "ZooKeeper", target: "all 3 members", writers: zkClients, put: put, procs: procs},
		cfg.warmup, cfg.duration)
}

var zkServing = regexp.MustCompile(`msg="serving zookeeper" .*addr=(\S+)`)

// adapterLoad makes the put function of a row over the adapters at addrs,
// and the function that closes its clients.
type adapterLoad func(addrs []string, value []byte) (putFunc, func(), error)

// runAdapterArmada measures one protocol adapter of a 3-node Armada of the
// real binary, started with flag (e.g. --zk-addr); serving matches the
// line each node logs with the adapter's address.
func runAdapterArmada(ctx context.Context, cfg config, bin, dir, flag string, serving *regexp.Regexp, target string,
	writers int, load adapterLoad, value []byte) (res loadResult, err error) {
	slog.Info("starting a 3-node Armada cluster with an adapter", "flag", flag, "dir", dir)
	c, err := startArmada(bin, dir, 3, flag, "127.0.0.1:0")
	defer stopAfter(ctx, &err, c.logTails, c.stop)
	var leader *armadaNode
	if err == nil {
		leader, err = c.waitHealthy(ctx, 60*time.Second)
	}
	if err != nil {
		return res, fmt.Errorf("armada cluster: %w", err)
	}
	var addrs []string
	for _, n := range c.nodes {
		b, err := os.ReadFile(n.proc.logPath)
		if err != nil {
			return res, err
		}
		m := serving.FindSubmatch(b)
		if m == nil {
			return res, fmt.Errorf("%s does not serve the adapter of %s", n.name, flag)
		}
		addrs = append(addrs, string(m[1]))
	}
	put, closeAll, err := load(addrs, value)
	if err != nil {
		return res, err
	}
	defer closeAll()
	return runLoad(ctx, loadSpec{system: "Armada", target: target, writers: writers, put: put,
		procs: c.watch(leader)}, cfg.warmup, cfg.duration)
}

// runZKArmada measures the ZooKeeper adapter of a 3-node Armada.
func runZKArmada(ctx context.Context, cfg config, bin, dir string, value []byte) (loadResult, error) {
	return runAdapterArmada(ctx, cfg, bin, dir, "--zk-addr", zkServing, "all 3 nodes' ZooKeeper adapters", zkClients,
		zkLoad, value)
}

// runZK runs the ZooKeeper part: the reference when installed, then Armada.
func runZK(ctx context.Context, cfg config, bin, dir string, value []byte) (*zkBench, error) {
	zb := &adapterBench{
		title:   "ZooKeeper writes",
		refName: "ZooKeeper",
		target:  zkTargetRatio,
		about: fmt.Sprintf("%d go-zookeeper clients, one session each, spread evenly over the 3 servers, each setting its own znode "+
			"to a %d-byte value as fast as the answers come back (`Set`, version -1): a 3-member ZooKeeper 3.8 ensemble "+
			"(Debian package, `forceSync` on) and the ZooKeeper adapter (`--zk-addr`) of a 3-node Armada, in the same run.",
			zkClients, len(value)),
	}
	_, err := os.Stat(zkJar)
	return zb.run(err == nil, "jar "+zkJar, func() (loadResult, error) {
		return runZKReference(ctx, cfg, filepath.Join(dir, "zookeeper"), value)
	}, func() (loadResult, error) {
		return runZKArmada(ctx, cfg, bin, filepath.Join(dir, "armada-zk"), value)
	})
}

// run measures the reference when it is installed, then Armada's adapter.
func (ab *adapterBench) run(installed bool, what string, reference, armada func() (loadResult, error)) (*adapterBench, error) {
	if installed {
		ref, err := reference()
		if err != nil {
			return nil, fmt.Errorf("%s reference: %w", ab.refName, err)
		}
		ab.reference = &ref
	} else {
		slog.Warn("the reference is not installed: its figure will have none", "reference", ab.refName, "looked for", what)
	}
	res, err := armada()
	if err != nil {
		return nil, err
	}
	ab.armada = res
	return ab, nil
}

// markdown is the part's section of the report.
func (ab *adapterBench) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", ab.title, ab.about)
	fmt.Fprintf(&b, "| System | Writes/s | p50 | p99 | Max | Errors |\n|---|--:|--:|--:|--:|--:|\n")
	rows := []loadResult{ab.armada}
	if ab.reference != nil {
		rows = append([]loadResult{*ab.reference}, rows...)
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %d |\n", r.system, fmtRate(r.rate()), fmtMs(r.p50), fmtMs(r.p99), fmtMs(r.maxLatency), r.errors)
	}
	if ab.reference == nil || ab.reference.rate() == 0 {
		fmt.Fprintf(&b, "\n%s was not installed, so there is no reference", ab.refName)
		if ab.target > 0 {
			fmt.Fprintf(&b, " (target: ≥ %.0f× %s)", ab.target, ab.refName)
		}
		b.WriteString(".\n")
		return b.String()
	}
	ratio := ab.armada.rate() / ab.reference.rate()
	if ab.target == 0 {
		fmt.Fprintf(&b, "\nArmada / %s: **%.2f×** (no target: reported).\n", ab.refName, ratio)
		return b.String()
	}
	fmt.Fprintf(&b, "\nArmada / %s: **%.1f×** (target ≥ %.0f×): %s.\n", ab.refName, ratio, ab.target,
		judge(ratio >= ab.target, ""))
	return b.String()
}
