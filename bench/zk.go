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
	"strconv"
	"strings"
	"time"

	gozk "github.com/go-zookeeper/zk"
)

// The ZooKeeper figure: go-zookeeper clients, each on its own session,
// spread evenly over the 3 members, setting (Set, version -1) or reading
// (GetData) their own znode — against a 3-member ZooKeeper 3.8 (the Debian
// package) and against the ZooKeeper adapter of a 3-node Armada of the
// real binary, in the same run.

// zkTargetRatio is the target: Armada's adapter at least this many
// times ZooKeeper's writes/s at 64 clients.
const zkTargetRatio = 3.0

// zkJar is the Debian package's jar; its absence skips the reference.
const zkJar = "/usr/share/java/zookeeper.jar"

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

// zkLoad opens n sessions, session i on addrs[i % len(addrs)], and
// creates (or sets) each one's znode /bench/w<i> to value.
func zkLoad(_ context.Context, addrs []string, n int, value []byte) (adapterClients, error) {
	conns := make([]*gozk.Conn, n)
	closeAll := func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}
	fail := func(err error) (adapterClients, error) {
		closeAll()
		return adapterClients{}, err
	}
	for i := range conns {
		c, _, err := gozk.Connect([]string{addrs[i%len(addrs)]}, 10*time.Second, gozk.WithLogger(zkLogger{}))
		if err != nil {
			return fail(fmt.Errorf("zookeeper client: %w", err))
		}
		conns[i] = c
	}
	if _, err := conns[0].Create("/bench", nil, 0, gozk.WorldACL(gozk.PermAll)); err != nil && !errors.Is(err, gozk.ErrNodeExists) {
		return fail(fmt.Errorf("create /bench: %w", err))
	}
	for i, c := range conns {
		_, err := c.Create(zkPath(i), value, 0, gozk.WorldACL(gozk.PermAll))
		if errors.Is(err, gozk.ErrNodeExists) {
			_, err = c.Set(zkPath(i), value, -1)
		}
		if err != nil {
			return fail(fmt.Errorf("write %s: %w", zkPath(i), err))
		}
	}
	return adapterClients{
		write: func(_ context.Context, worker, _ int) error {
			_, err := conns[worker].Set(zkPath(worker), value, -1)
			return err
		},
		read: func(_ context.Context, worker, _ int) error {
			data, _, err := conns[worker].Get(zkPath(worker))
			if err == nil && len(data) != len(value) {
				err = fmt.Errorf("get %s: %d bytes, want %d", zkPath(worker), len(data), len(value))
			}
			return err
		},
		close: closeAll,
	}, nil
}

// zkPath is worker w's znode.
func zkPath(w int) string { return "/bench/w" + strconv.Itoa(w) }

// runZKReference measures the 3-member ZooKeeper ensemble.
func runZKReference(ctx context.Context, cfg config, dir string, value []byte) (res []loadResult, err error) {
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
	procs := []watched{{members[leader].name, members[leader].proc.pid()}}
	for i, m := range members {
		if i != leader {
			procs = append(procs, watched{m.name, m.proc.pid()})
		}
	}
	procs = append(procs, watched{"driver", os.Getpid()})
	return runAdapterRows(ctx, cfg, "ZooKeeper", "all 3 members", leaderFirst(addrs, leader), procs, zkLoad, value)
}

var zkServing = regexp.MustCompile(`msg="serving zookeeper" .*addr=(\S+)`)

// runZK runs the ZooKeeper part: the reference when installed, then Armada.
func runZK(ctx context.Context, cfg config, bin, dir string, value []byte) (*adapterBench, error) {
	zb := &adapterBench{
		title:   "ZooKeeper: Set and GetData",
		refName: "ZooKeeper",
		writeOp: "Set",
		readOp:  "GetData",
		target:  zkTargetRatio,
		about: "go-zookeeper clients, one session each, `Set` (version -1) or `GetData` of their own znode: " +
			"a 3-member ZooKeeper 3.8 ensemble (Debian package, `forceSync` on) and the ZooKeeper adapter (`--zk-addr`) " +
			"of a 3-node Armada. " + rowsText(cfg, len(value), "Client i's session is on server i mod 3, "+leaderFirstText+".") + " `GetData` is answered from the state of the " +
			"server the session is on, without a `sync`, by ZooKeeper and by Armada's adapter alike.",
	}
	_, err := os.Stat(zkJar)
	return zb.run(cfg.adapterRounds, err == nil, "jar "+zkJar, func(round int) ([]loadResult, error) {
		return runZKReference(ctx, cfg, filepath.Join(dir, roundDir("zookeeper", round)), value)
	}, func(round int) ([]loadResult, error) {
		return runAdapterArmada(ctx, cfg, bin, filepath.Join(dir, roundDir("armada-zk", round)), "--zk-addr", zkServing,
			"all 3 nodes' ZooKeeper adapters", zkLoad, value)
	})
}
