package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gameShip is a ship record with what the game-server tests read.
type gameShip struct {
	shipRec
	Ports   map[string]int    `json:"ports"`
	Address string            `json:"address"`
	Labels  map[string]string `json:"labels"`
	Desired string            `json:"desired"`
}

// applyDemoBlueprint puts blueprint name: the demo game server of this
// build with a TCP port "game", an sdk health check and E2E_RUN=token.
func applyDemoBlueprint(t *testing.T, n *Node, name, token, mode string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"name":      name,
		"unit":      "[Service]\nExecStart=" + armadaBin + " demo-server\n",
		"resources": map[string]int64{"cpu_mhz": 10, "memory_mb": 16},
		"ports":     []map[string]string{{"name": "game", "protocol": "tcp"}},
		"health":    map[string]any{"type": "sdk", "interval": "500ms", "timeout": "500ms", "failures": 4},
		"env":       map[string]string{"E2E_RUN": token, "MODE": mode},
		"labels":    map[string]string{"game": "demo"},
	})
	if r, err := writeAPI(n, http.MethodPut, "/v1/blueprints/"+name, body, 20*time.Second); err != nil {
		t.Fatalf("put blueprint %s: %v %v", name, r, err)
	}
}

func gameShips(n *Node, fleet string) ([]gameShip, error) {
	r, err := n.Get("/v1/ships?fleet=" + fleet)
	if err != nil {
		return nil, err
	}
	var out []gameShip
	if err := json.Unmarshal(r.Body, &out); err != nil {
		return nil, fmt.Errorf("ships: %w: %s", err, r.Body)
	}
	return out, nil
}

// countStates counts a fleet's ships by state.
func countStates(ships []gameShip) map[string]int {
	out := map[string]int{}
	for _, s := range ships {
		out[s.State]++
	}
	return out
}

// allocate asks for a ship of fleet until one is ready (409 means none is
// yet), and returns it.
func allocate(t *testing.T, n *Node, fleet string) gameShip {
	t.Helper()
	var out struct {
		Ship    gameShip       `json:"ship"`
		Address string         `json:"address"`
		Ports   map[string]int `json:"ports"`
	}
	waitFor(t, 30*time.Second, func() error {
		r, err := n.Do(http.MethodPost, "/v1/allocate", []byte(`{"fleet": "`+fleet+`"}`), "application/json")
		if err != nil {
			return err
		}
		if r.Status != http.StatusOK {
			return fmt.Errorf("allocate: %s", r)
		}
		return json.Unmarshal(r.Body, &out)
	})
	if out.Ship.State != "allocated" || out.Address == "" || out.Ports["game"] == 0 {
		t.Fatalf("allocation answered %+v", out)
	}
	return out.Ship
}

// talk sends lines to a demo server over TCP and returns its answers.
func talk(t *testing.T, addr string, lines ...string) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial demo server %s: %v", addr, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(conn)
	var out []string
	for _, l := range lines {
		fmt.Fprintln(conn, l)
		a, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("demo server %s after %q: %v", addr, l, err)
		}
		out = append(out, strings.TrimSpace(a))
	}
	return out
}

func pidOf(token, ship string) int {
	for _, p := range shipProcs(token) {
		if p.Ship == ship {
			return p.PID
		}
	}
	return 0
}

// TestGameServers runs the demo game server as a fleet with a buffer on a
// 3-node cluster of real binaries: the buffer keeps 3 ready ships;
// allocations take distinct ships and the buffer refills; the allocated
// servers answer players; allocated ships survive a scale to 0 and a
// rolling update; a match ends when the player says so; and a ship that
// stops heartbeating is replaced.
func TestGameServers(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	applyDemoBlueprint(t, api, "demo", token, "v1")
	fleet := func(body string) {
		t.Helper()
		if r, err := writeAPI(api, http.MethodPut, "/v1/fleets/arena", []byte(body), 20*time.Second); err != nil {
			t.Fatalf("put fleet: %v %v", r, err)
		}
	}
	fleet(`{"replicas": 1, "versions": [{"blueprint": "demo"}], "placement": {"strategy": "pack"}, "buffer": {"ready": 3, "min": 0, "max": 40}}`)

	// The buffer makes 3 ready ships out of replicas 1.
	took := waitFor(t, 30*time.Second, func() error {
		ships, err := gameShips(api, "arena")
		if err != nil {
			return err
		}
		if got := countStates(ships); got["ready"] != 3 || len(ships) != 3 {
			return fmt.Errorf("ships by state %v, want 3 ready", got)
		}
		return nil
	})
	t.Logf("3 ready demo servers %s after the fleet was applied", took.Round(time.Millisecond))

	// 10 allocations take 10 distinct ships; the buffer refills to 3 ready.
	allocated := map[string]gameShip{}
	for range 10 {
		s := allocate(t, api, "arena")
		if _, dup := allocated[s.ID]; dup {
			t.Fatalf("ship %s allocated twice", s.ID)
		}
		allocated[s.ID] = s
	}
	waitFor(t, 30*time.Second, func() error {
		ships, err := gameShips(api, "arena")
		if err != nil {
			return err
		}
		got := countStates(ships)
		if got["ready"] != 3 || got["allocated"] != 10 {
			return fmt.Errorf("ships by state %v, want 10 allocated and 3 ready", got)
		}
		for _, s := range ships {
			if s.State == "allocated" && allocated[s.ID].ID == "" {
				return fmt.Errorf("ship %s is allocated but was not answered", s.ID)
			}
		}
		return nil
	})
	pids := map[string]int{}
	for id := range allocated {
		if pids[id] = pidOf(token, id); pids[id] == 0 {
			t.Fatalf("allocated ship %s has no process", id)
		}
	}

	// An allocated server answers its player on its port.
	var first gameShip
	for _, s := range allocated {
		first = s
		break
	}
	addr := net.JoinHostPort(first.Address, fmt.Sprint(first.Ports["game"]))
	if got := talk(t, addr, "hello"); got[0] != "echo: hello" {
		t.Fatalf("demo server answered %q", got)
	}

	// Scale to 0 (no buffer): the ready ships stop, the allocated ones
	// keep running, same processes.
	fleet(`{"replicas": 0, "versions": [{"blueprint": "demo"}], "placement": {"strategy": "pack"}}`)
	waitFor(t, 30*time.Second, func() error {
		ships, err := gameShips(api, "arena")
		if err != nil {
			return err
		}
		if got := countStates(ships); got["ready"] != 0 || got["allocated"] != 10 || got["stopping"] != 0 {
			return fmt.Errorf("after scale to 0: ships by state %v, want 10 allocated only", got)
		}
		return nil
	})

	// A rolling update to version 2: new ships are v2; the allocated v1
	// ships stay allocated, on the same processes.
	applyDemoBlueprint(t, api, "demo", token, "v2")
	fleet(`{"replicas": 12, "versions": [{"blueprint": "demo", "version": 2}], "placement": {"strategy": "pack"}}`)
	waitFor(t, 45*time.Second, func() error {
		ships, err := gameShips(api, "arena")
		if err != nil {
			return err
		}
		ready2, alloc1 := 0, 0
		for _, s := range ships {
			switch {
			case s.State == "ready" && s.Version == 2:
				ready2++
			case s.State == "allocated" && s.Version == 1:
				alloc1++
			case !s.ended():
				return fmt.Errorf("ship %s v%d is %s (%s)", s.ID, s.Version, s.State, s.Reason)
			}
		}
		if ready2 != 2 || alloc1 != 10 {
			return fmt.Errorf("%d v2 ready (want 2: 12 replicas less 10 allocated), %d v1 allocated (want 10)", ready2, alloc1)
		}
		return nil
	})
	for id, pid := range pids {
		if got := pidOf(token, id); got != pid {
			t.Fatalf("allocated ship %s: process %d, was %d", id, got, pid)
		}
	}

	// The player ends the match: the server shuts its ship down and exits.
	if got := talk(t, addr, "END"); got[0] != "match over, bye" {
		t.Fatalf("END answered %q", got)
	}
	waitFor(t, 20*time.Second, func() error {
		if p := pidOf(token, first.ID); p != 0 {
			return fmt.Errorf("ship %s still runs as %d", first.ID, p)
		}
		return checkStates(api, "arena", []string{first.ID}, "stopped")
	})

	// A ship that stops heartbeating (frozen with SIGSTOP) fails and is
	// replaced.
	ships, err := gameShips(api, "arena")
	if err != nil {
		t.Fatal(err)
	}
	var frozen string
	for _, s := range ships {
		if s.State == "ready" {
			frozen = s.ID
			break
		}
	}
	pid := pidOf(token, frozen)
	if pid == 0 {
		t.Fatalf("ready ship %s has no process", frozen)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(pid, syscall.SIGCONT)
	waitFor(t, 30*time.Second, func() error {
		ships, err := gameShips(api, "arena")
		if err != nil {
			return err
		}
		i := slices.IndexFunc(ships, func(s gameShip) bool { return s.ID == frozen })
		if i < 0 || ships[i].State != "failed" || !strings.Contains(ships[i].Reason, "no SDK heartbeat") {
			return fmt.Errorf("frozen ship %s: %+v", frozen, ships[i])
		}
		ready := 0
		for _, s := range ships {
			if s.State == "ready" && s.Version == 2 {
				ready++
			}
		}
		if ready != 2 {
			return fmt.Errorf("%d v2 ships ready, want the frozen one replaced (2)", ready)
		}
		return nil
	})
}

// TestMakeRunDemo runs what `make run` runs (examples/demo/run.sh) and
// plays a match the way the README tells a new user to.
func TestMakeRunDemo(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	token := shipToken(t)
	httpAddr := freeAddr(t)
	cmd := exec.Command(filepath.Join(root, "examples/demo/run.sh"), armadaBin)
	cmd.Dir = t.TempDir()
	logPath := filepath.Join(cmd.Dir, "run.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = childEnv("ARMADA_HTTP_ADDR="+httpAddr, "ARMADA_GOSSIP_ADDR="+freeAddr(t), "ARMADA_RAFT_ADDR="+freeAddr(t),
		"ARMADA_SDK_ADDR="+freeAddr(t), "ARMADA_NAME=demo-node", "E2E_RUN="+token)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("run.sh did not stop on SIGTERM")
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("run.sh output:\n%s", b)
		}
	})
	env := []string{"ARMADA_ADDR=http://" + httpAddr}
	waitFor(t, 60*time.Second, func() error {
		res := runCLIWithin(t, 10*time.Second, env, "ship", "list", "--fleet", "demo", "--state", "ready", "-o", "json")
		var ships []gameShip
		if res.Code != 0 || json.Unmarshal([]byte(res.Stdout), &ships) != nil || len(ships) != 3 {
			return fmt.Errorf("demo fleet not 3 ready yet: %s", res)
		}
		return nil
	})
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), "/ui/") {
		t.Errorf("run.sh did not print the UI address:\n%s", b)
	}
	res := mustCLI(t, env, "allocate", "demo", "-o", "json")
	var a struct {
		Ship    gameShip       `json:"ship"`
		Address string         `json:"address"`
		Ports   map[string]int `json:"ports"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &a); err != nil {
		t.Fatalf("allocate: %v\n%s", err, res)
	}
	addr := net.JoinHostPort(a.Address, fmt.Sprint(a.Ports["game"]))
	// UDP echo too.
	uc, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	uc.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprint(uc, "ping")
	buf := make([]byte, 100)
	if n, err := uc.Read(buf); err != nil || strings.TrimSpace(string(buf[:n])) != "echo: ping" {
		t.Fatalf("udp echo: %q %v", buf[:n], err)
	}
	if got := talk(t, addr, "hi", "END"); got[0] != "echo: hi" || got[1] != "match over, bye" {
		t.Fatalf("demo server answered %q", got)
	}
	waitFor(t, 20*time.Second, func() error {
		res := runCLIWithin(t, 10*time.Second, env, "ship", "show", a.Ship.ID, "-o", "json")
		var s gameShip
		if json.Unmarshal([]byte(res.Stdout), &s) != nil || s.State != "stopped" {
			return fmt.Errorf("allocated ship after END: %s", res)
		}
		return nil
	})
}
