package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/armada-orchestrator/armada/internal/sandbox"
	"github.com/armada-orchestrator/armada/worker"
)

// sdNode prepares a node that runs inside its own systemd sandbox with
// --driver driver; it does not start it.
func sdNode(t *testing.T, c *Cluster, dir, driver, name string, seeds ...string) *Node {
	t.Helper()
	sb := sandbox.Start(t)
	n := c.NewNode(name, seeds...)
	n.DataDir = filepath.Join(dir, name+"-data")
	n.Sandbox, n.Bin = sb, filepath.Join(dir, "armada")
	n.Extra = append(n.Extra, "--driver", driver)
	return n
}

// sdSetup boots the sandboxes of a test (one per node) and copies the
// binary where they see it. Sandboxes go last, after the nodes.
func sdSetup(t *testing.T) (*Cluster, string) {
	t.Helper()
	dir := sandbox.Dir(t)
	sandbox.CopyFile(t, armadaBin, dir)
	return NewCluster(t), dir
}

// sdRun runs a command in a node's sandbox and fails the test on error.
func sdRun(t *testing.T, n *Node, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := n.Sandbox.Run(ctx, name, args...)
	if err != nil {
		t.Fatalf("in %s's sandbox: %v", n.Name, err)
	}
	return out
}

// unitProps reads properties of a unit in a node's sandbox.
func unitProps(n *Node, unit string, props ...string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	args := []string{"show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out, err := n.Sandbox.Run(ctx, "systemctl", args...)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

// armadaUnits lists the armada units systemd has loaded in a node's
// sandbox, with their ActiveState.
func armadaUnits(n *Node) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := n.Sandbox.Run(ctx, "systemctl", "list-units", "--all", "--plain", "--no-legend", "armada-*.service")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] != "not-found" {
			m[f[0]] = f[2]
		}
	}
	return m, nil
}

// readyShips waits until a fleet has want ready ships and no others live,
// and returns them.
func readyShips(t *testing.T, api *Node, fleet string, want int) []shipRec {
	t.Helper()
	var ready []shipRec
	waitFor(t, 30*time.Second, func() error {
		ships, err := fleetShips(api, fleet)
		if err != nil {
			return err
		}
		ready = nil
		for _, s := range ships {
			switch {
			case s.State == "ready":
				ready = append(ready, s)
			case !s.ended():
				return fmt.Errorf("ship %s is %s (%s)", s.ID, s.State, s.Reason)
			}
		}
		if len(ready) != want {
			return fmt.Errorf("%d ready ships, want %d:\n%s", len(ready), want, shipsTable(ships))
		}
		return nil
	})
	slices.SortFunc(ready, func(a, b shipRec) int { return strings.Compare(a.ID, b.ID) })
	return ready
}

func putJSON(t *testing.T, n *Node, path string, v any) {
	t.Helper()
	body, _ := json.Marshal(v)
	if r, err := writeAPI(n, http.MethodPut, path, body, 20*time.Second); err != nil {
		t.Fatalf("PUT %s: %v %v", path, r, err)
	}
}

// mainPID is a unit's MainPID (as its sandbox sees it), 0 if none.
func mainPID(t *testing.T, n *Node, unit string) int {
	t.Helper()
	p, err := unitProps(n, unit, "MainPID")
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(p["MainPID"])
	return pid
}

// TestSystemdDriver runs a fleet as systemd units in a sandbox: the units
// run with the ship's environment and limits and keep secrets out of
// systemd's view; systemd's Restart= handles a killed process; a unit
// stopped by hand is seen and its ship replaced; a SIGKILLed worker comes
// back and adopts its units without restarting them, stops an armada unit
// it does not own and leaves other units alone; deleting the fleet
// removes the units.
func TestSystemdDriver(t *testing.T) {
	c, dir := sdSetup(t)
	n := sdNode(t, c, dir, "systemd", "s1")
	n.Start()
	waitSingleLeader(t, n, 30*time.Second)
	waitSchedulable(t, n, []*Node{n})
	if !strings.Contains(n.Log(), "component=systemd") {
		t.Fatalf("the node does not run the systemd driver:\n%s", n.Log())
	}

	secret := "s3cr3t-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	putJSON(t, n, "/v1/blueprints/web", map[string]any{
		"name":      "web",
		"unit":      "[Service]\nExecStart=/bin/sh -c 'echo started $ARMADA_SHIP_ID; exec sleep 100000'\nEnvironment=FROM_UNIT=yes\nRestart=on-failure\nRestartSec=100ms\n",
		"resources": map[string]int64{"cpu_mhz": 300, "memory_mb": 64},
		"ports":     []map[string]string{{"name": "http"}},
		"env":       map[string]string{"MODE": "ranked", "QUOTED": `a "b" $c \d`},
		"secrets":   map[string]string{"API_KEY": secret},
	})
	putJSON(t, n, "/v1/fleets/web", map[string]any{
		"name": "web", "replicas": 2, "versions": []map[string]any{{"blueprint": "web"}},
	})
	ships := readyShips(t, n, "web", 2)

	coreMHz, err := worker.CoreMHz("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ships {
		unit := worker.UnitName(s.ID)
		p, err := unitProps(n, unit, "ActiveState", "MainPID", "Environment", "EnvironmentFiles", "CPUQuotaPerSecUSec", "MemoryMax")
		if err != nil {
			t.Fatal(err)
		}
		if p["ActiveState"] != "active" || p["MainPID"] == "0" {
			t.Fatalf("unit %s: %v", unit, p)
		}
		wantQuota := fmt.Sprintf("%dms", worker.CPUQuota(300, coreMHz)*10)
		if p["CPUQuotaPerSecUSec"] != wantQuota || p["MemoryMax"] != strconv.Itoa(64<<20) {
			t.Errorf("unit %s limits: CPUQuotaPerSecUSec=%s MemoryMax=%s, want %s and %d", unit, p["CPUQuotaPerSecUSec"], p["MemoryMax"], wantQuota, 64<<20)
		}
		if p["Environment"] != "FROM_UNIT=yes" {
			t.Errorf("unit %s: Environment=%q, want only the unit's own FROM_UNIT=yes", unit, p["Environment"])
		}
		envFile := strings.Fields(p["EnvironmentFiles"])[0]
		environ := sdRun(t, n, "cat", "/proc/"+p["MainPID"]+"/environ")
		vars := strings.Split(environ, "\x00")
		for _, want := range []string{"ARMADA_SHIP_ID=" + s.ID, "ARMADA_FLEET=web", "MODE=ranked", `QUOTED=a "b" $c \d`,
			"API_KEY=" + secret, "FROM_UNIT=yes", fmt.Sprintf("ARMADA_PORT_HTTP=%d", s.Ports["http"])} {
			if !slices.Contains(vars, want) {
				t.Errorf("unit %s: main process lacks %q: %q", unit, want, vars)
			}
		}
		// The secret is in the root-only environment file and nowhere
		// systemd shows.
		if all := sdRun(t, n, "systemctl", "show", unit); strings.Contains(all, secret) {
			t.Errorf("systemctl show %s reveals the secret", unit)
		}
		if cat := sdRun(t, n, "systemctl", "cat", unit); strings.Contains(cat, secret) {
			t.Errorf("systemctl cat %s reveals the secret:\n%s", unit, cat)
		}
		if st := sdRun(t, n, "stat", "-c", "%a %U", envFile, filepath.Dir(envFile)); st != "600 root\n700 root" && st != "600 root\n700 root\n" {
			t.Errorf("environment file %s: mode and owner %q, want 600 root in a 700 directory", envFile, st)
		}
		// Logs: no journald in the sandbox, so the captured log.
		waitFor(t, 10*time.Second, func() error {
			res := runCLI(t, []string{"ARMADA_ADDR=" + n.BaseURL()}, "ship", "logs", s.ID)
			if res.Code != 0 || !strings.Contains(res.Stdout, "started "+s.ID) {
				return fmt.Errorf("armada ship logs %s: %s", s.ID, res)
			}
			return nil
		})
	}

	checkUsage(t, n, coreMHz)

	// Killed by hand: systemd restarts it (Restart=on-failure); the ship
	// stays the same.
	victim := ships[0]
	vUnit := worker.UnitName(victim.ID)
	oldPID := mainPID(t, n, vUnit)
	sdRun(t, n, "kill", "-KILL", strconv.Itoa(oldPID))
	waitFor(t, 10*time.Second, func() error {
		p, err := unitProps(n, vUnit, "ActiveState", "MainPID", "NRestarts")
		if err != nil {
			return err
		}
		if p["ActiveState"] != "active" || p["MainPID"] == strconv.Itoa(oldPID) || p["MainPID"] == "0" || p["NRestarts"] != "1" {
			return fmt.Errorf("unit %s after kill -9 of %d: %v", vUnit, oldPID, p)
		}
		return nil
	})
	ships = readyShips(t, n, "web", 2)
	if ships[0].ID != victim.ID {
		t.Fatalf("ship %s was replaced after systemd restarted its process: %v", victim.ID, ids(ships))
	}

	// Stopped by hand: the worker sees it and reports the ship stopped;
	// the fleet replaces it.
	stopped := ships[1]
	stoppedAt := time.Now()
	sdRun(t, n, "systemctl", "stop", worker.UnitName(stopped.ID))
	seen := waitFor(t, 10*time.Second, func() error {
		r, err := n.Get("/v1/ships/" + stopped.ID)
		if err != nil {
			return err
		}
		var s shipRec
		if err := json.Unmarshal(r.Body, &s); err != nil {
			return err
		}
		if !s.ended() {
			return fmt.Errorf("ship %s is %s", s.ID, s.State)
		}
		return nil
	})
	t.Logf("unit of %s stopped by hand; the ship was reported ended %s later", stopped.ID, seen.Round(time.Millisecond))
	ships = readyShips(t, n, "web", 2)
	if slices.Contains(ids(ships), stopped.ID) {
		t.Fatalf("ship %s still counted after its unit was stopped", stopped.ID)
	}
	t.Logf("replacement ready %s after the stop", time.Since(stoppedAt).Round(time.Millisecond))

	// An armada unit the cluster does not know, and a unit of someone
	// else, both running while the worker is down.
	sdRun(t, n, "systemd-run", "--unit=bystander", "sleep", "100000")
	pids := map[string]int{}
	for _, s := range ships {
		pids[s.ID] = mainPID(t, n, worker.UnitName(s.ID))
	}
	n.Kill()
	ghost := worker.UnitName("ghost-1")
	sdRun(t, n, "sh", "-c", fmt.Sprintf(`set -e
printf '[Service]\nExecStart=/bin/sleep 100000\n' > /run/systemd/system/%[1]s
mkdir -p /run/systemd/system/%[1]s.d
printf '[Service]\n' > /run/systemd/system/%[1]s.d/armada.conf
systemctl daemon-reload
systemctl start %[1]s`, ghost))
	for id, pid := range pids {
		if got := mainPID(t, n, worker.UnitName(id)); got != pid {
			t.Fatalf("unit of %s: MainPID %d after the worker was killed, was %d", id, got, pid)
		}
	}
	n.Restart()
	waitFor(t, 20*time.Second, func() error {
		units, err := armadaUnits(n)
		if err != nil {
			return err
		}
		if _, ok := units[ghost]; ok {
			return fmt.Errorf("unit %s not assigned to this node still loaded: %v", ghost, units)
		}
		return nil
	})
	after := readyShips(t, n, "web", 2)
	if !slices.Equal(ids(after), ids(ships)) {
		t.Fatalf("ships after the worker restart %v, want the same %v", ids(after), ids(ships))
	}
	for id, pid := range pids {
		if got := mainPID(t, n, worker.UnitName(id)); got != pid {
			t.Errorf("unit of %s: MainPID %d after the worker restart, was %d: it was restarted, not adopted", id, got, pid)
		}
	}
	if !strings.Contains(n.Log(), "adopted unit") {
		t.Errorf("the restarted worker logged no adoption")
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(n.Sandbox.PID))); err != nil {
		t.Fatal(err)
	}

	// Deleting the fleet stops and removes its units; the bystander runs on.
	if r, err := writeAPI(n, http.MethodDelete, "/v1/fleets/web", nil, 20*time.Second); err != nil {
		t.Fatalf("DELETE /v1/fleets/web: %v %v", r, err)
	}
	waitFor(t, 20*time.Second, func() error {
		units, err := armadaUnits(n)
		if err != nil {
			return err
		}
		if len(units) > 0 {
			return fmt.Errorf("armada units left after the fleet was deleted: %v", units)
		}
		left := sdRun(t, n, "sh", "-c", "ls /run/systemd/system /run/armada/env | grep armada- || true")
		if left != "" {
			return fmt.Errorf("files left: %s", left)
		}
		return nil
	})
	if st := sdRun(t, n, "systemctl", "is-active", "bystander"); st != "active" {
		t.Errorf("bystander unit is %s, want active (left alone)", st)
	}
}

// TestSystemdMultiNode runs three nodes, each in its own sandbox (two with
// --driver auto, which must pick systemd there): a
// spread fleet gets one unit in each, and when one sandbox dies whole
// (machine lost) its ship is replaced by a unit in another.
func TestSystemdMultiNode(t *testing.T) {
	c, dir := sdSetup(t)
	n1 := sdNode(t, c, dir, "systemd", "n1")
	n1.Start()
	waitSingleLeader(t, n1, 30*time.Second)
	// auto picks systemd where its private socket answers.
	n2 := sdNode(t, c, dir, "auto", "n2", n1.GossipAddr)
	n3 := sdNode(t, c, dir, "auto", "n3", n1.GossipAddr)
	n2.Start()
	n3.Start()
	for _, n := range []*Node{n2, n3} {
		if !strings.Contains(n.Log(), "driver auto: using systemd") {
			t.Fatalf("%s with --driver auto in a sandbox did not pick systemd:\n%s", n.Name, n.Log())
		}
	}
	nodes := []*Node{n1, n2, n3}
	waitSchedulable(t, n1, nodes)
	putJSON(t, n1, "/v1/blueprints/spread", map[string]any{
		"name": "spread", "unit": "[Service]\nExecStart=/bin/sleep 100000\n",
		"resources": map[string]int64{"cpu_mhz": 10, "memory_mb": 16},
	})
	putJSON(t, n1, "/v1/fleets/spread", map[string]any{
		"name": "spread", "replicas": 3, "versions": []map[string]any{{"blueprint": "spread"}},
		"placement": map[string]string{"strategy": "spread"},
	})
	ships := readyShips(t, n1, "spread", 3)
	byNode := map[string]string{}
	for _, s := range ships {
		byNode[s.Node] = s.ID
	}
	for _, n := range nodes {
		units, err := armadaUnits(n)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{worker.UnitName(byNode[n.Name]): "active"}
		if len(units) != 1 || units[worker.UnitName(byNode[n.Name])] != "active" {
			t.Fatalf("sandbox of %s runs %v, want %v", n.Name, units, want)
		}
	}
	// n3's whole machine goes: its ship is lost and replaced on n1 or n2.
	lostShip := byNode["n3"]
	n3.Kill()
	if err := n3.Sandbox.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() error {
		ships, err := fleetShips(n1, "spread")
		if err != nil {
			return err
		}
		ready := 0
		for _, s := range ships {
			if s.ID == lostShip && s.State != "lost" {
				return fmt.Errorf("ship %s is %s, want lost", s.ID, s.State)
			}
			if s.State == "ready" && s.Node != "n3" {
				ready++
			}
		}
		if ready != 3 {
			return fmt.Errorf("%d ships ready on n1 and n2, want 3:\n%s", ready, shipsTable(ships))
		}
		total := 0
		for _, n := range nodes[:2] {
			units, err := armadaUnits(n)
			if err != nil {
				return err
			}
			for u, st := range units {
				if st != "active" {
					return fmt.Errorf("%s: unit %s is %s", n.Name, u, st)
				}
				total++
			}
		}
		if total != 3 {
			return fmt.Errorf("%d active armada units on n1 and n2, want 3", total)
		}
		return nil
	})
}

// checkUsage runs a standalone CPU burner ship (unit armada-burn-<n>.service)
// limited to 200 MHz and checks the figures the worker reports for it and
// its node: on the ship and the node records and in /metrics.
func checkUsage(t *testing.T, n *Node, coreMHz float64) {
	t.Helper()
	putJSON(t, n, "/v1/blueprints/burn", map[string]any{
		"name": "burn", "unit": "[Service]\nExecStart=/bin/sh -c 'while :; do :; done'\n",
		"resources": map[string]int64{"cpu_mhz": 200, "memory_mb": 32},
	})
	r, err := writeAPI(n, http.MethodPost, "/v1/ships", []byte(`{"blueprint":"burn"}`), 20*time.Second)
	if err != nil {
		t.Fatalf("POST /v1/ships: %v", err)
	}
	var burn shipRec
	if err := json.Unmarshal(r.Body, &burn); err != nil || burn.ID == "" {
		t.Fatalf("POST /v1/ships: %v %s", err, r.Body)
	}
	if !strings.HasPrefix(worker.UnitName(burn.ID), "armada-burn-") {
		t.Fatalf("standalone ship %s: unit %s", burn.ID, worker.UnitName(burn.ID))
	}
	type usage struct {
		CPUMHz   int64 `json:"cpu_mhz"`
		MemoryMB int64 `json:"memory_mb"`
		At       int64 `json:"at"`
	}
	var su usage
	took := waitFor(t, 20*time.Second, func() error {
		r, err := n.Get("/v1/ships/" + burn.ID)
		if err != nil {
			return err
		}
		var s struct {
			State string `json:"state"`
			Usage *usage `json:"usage"`
		}
		if err := json.Unmarshal(r.Body, &s); err != nil {
			return err
		}
		if s.State != "ready" || s.Usage == nil || s.Usage.CPUMHz == 0 {
			return fmt.Errorf("ship %s: %s", burn.ID, r.Body)
		}
		su = *s.Usage
		return nil
	})
	t.Logf("burner %s: usage %+v, %s after it was created; its quota is %d%% of a %.0f MHz core", burn.ID, su, took.Round(time.Millisecond), worker.CPUQuota(200, coreMHz), coreMHz)
	// CPUQuota= holds it to about 200 MHz (scheduling noise aside).
	if su.CPUMHz > 300 {
		t.Errorf("burner uses %d MHz; its CPUQuota= should hold it near 200", su.CPUMHz)
	}
	env := []string{"ARMADA_ADDR=" + n.BaseURL()}
	if out := mustCLI(t, env, "ship", "show", burn.ID).Stdout; !strings.Contains(out, "usage") || !strings.Contains(out, " MHz, ") {
		t.Errorf("armada ship show %s has no usage:\n%s", burn.ID, out)
	}
	if out := mustCLI(t, env, "node", "show", n.Name).Stdout; !strings.Contains(out, "usage") {
		t.Errorf("armada node show %s has no usage:\n%s", n.Name, out)
	}
	rec, err := n.Get("/v1/nodes/" + n.Name)
	if err != nil {
		t.Fatal(err)
	}
	var node struct {
		Usage *usage `json:"usage"`
	}
	if err := json.Unmarshal(rec.Body, &node); err != nil || node.Usage == nil || node.Usage.MemoryMB <= 0 || node.Usage.CPUMHz <= 0 {
		t.Errorf("node %s usage: %v %s", n.Name, err, rec.Body)
	}
	m, err := n.Get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"armada_ship_cpu_usage_mhz", "armada_ship_memory_bytes", "armada_ship_cpu_seconds_total"} {
		line := fmt.Sprintf("%s{ship=%q} ", name, burn.ID)
		i := strings.Index(string(m.Body), line)
		if i < 0 {
			t.Errorf("/metrics has no %s", line)
			continue
		}
		v, _, _ := strings.Cut(string(m.Body[i+len(line):]), "\n")
		if f, err := strconv.ParseFloat(v, 64); err != nil || f <= 0 {
			t.Errorf("/metrics: %s%s, want a positive figure", line, v)
		}
	}
	for _, name := range []string{"armada_node_capacity_cpu_mhz ", "armada_node_memory_used_bytes ", "armada_node_cpu_usage_mhz "} {
		if !strings.Contains(string(m.Body), "\n"+name) {
			t.Errorf("/metrics has no %s", name)
		}
	}
	if r, err := writeAPI(n, http.MethodDelete, "/v1/ships/"+burn.ID, nil, 20*time.Second); err != nil {
		t.Fatalf("DELETE /v1/ships/%s: %v %v", burn.ID, r, err)
	}
}

// TestSystemdDeployment: two nodes, each in its own systemd sandbox. A
// deployment from version 1 to 2 with max_parallel 1 never has fewer than
// replicas - 1 ready ships and ends with only version-2 units active; a
// version whose ExecStart exits at once is rolled back, and the version-2
// units keep running (same MainPIDs) throughout.
func TestSystemdDeployment(t *testing.T) {
	c, dir := sdSetup(t)
	n1 := sdNode(t, c, dir, "systemd", "n1")
	n1.Start()
	waitSingleLeader(t, n1, 30*time.Second)
	n2 := sdNode(t, c, dir, "systemd", "n2", n1.GossipAddr)
	n2.Start()
	nodes := []*Node{n1, n2}
	waitSchedulable(t, n1, nodes)
	env := []string{"ARMADA_ADDR=" + n1.BaseURL()}
	for _, unit := range []string{"[Service]\nExecStart=/bin/sleep 100000\n", "[Service]\nExecStart=/bin/sleep 99999\n", "[Service]\nExecStart=/bin/false\n"} {
		putJSON(t, n1, "/v1/blueprints/svc", map[string]any{"name": "svc", "unit": unit, "resources": map[string]int64{"cpu_mhz": 10, "memory_mb": 16}})
	}
	putFleetJSON(t, n1, "svc", `{"replicas": 4, "versions": [{"blueprint": "svc", "version": 1}]}`)
	readyShips(t, n1, "svc", 4)

	w := watchFewestReady(n1, "svc")
	putFleetJSON(t, n1, "svc", `{"replicas": 4, "versions": [{"blueprint": "svc", "version": 2}], "update": {"max_parallel": 1}}`)
	res := runCLIWithin(t, 90*time.Second, env, "fleet", "rollout", "svc")
	fewest, polls := w.end()
	if res.Code != 0 || !strings.Contains(res.Stdout, "succeeded") {
		t.Fatalf("rollout to version 2:\n%s", res)
	}
	if fewest < 3 {
		t.Fatalf("during the deployment only %d ships were ready (replicas 4, max_parallel 1; %d polls)", fewest, polls)
	}
	ships := readyShips(t, n1, "svc", 4)
	pids := map[string]int{}
	waitFor(t, 20*time.Second, func() error {
		total := 0
		for _, n := range nodes {
			units, err := armadaUnits(n)
			if err != nil {
				return err
			}
			for u, st := range units {
				if st == "active" {
					total++
				} else {
					return fmt.Errorf("%s: unit %s is %s", n.Name, u, st)
				}
			}
		}
		if total != 4 {
			return fmt.Errorf("%d armada units active, want the 4 of version 2", total)
		}
		return nil
	})
	for _, s := range ships {
		if s.Version != 2 {
			t.Fatalf("ship %s runs version %d after the deployment", s.ID, s.Version)
		}
		pids[s.ID] = mainPID(t, byName(nodes, s.Node), worker.UnitName(s.ID))
	}
	t.Logf("deployment 1 → 2 under systemd: at least %d of 4 ready in %d polls", fewest, polls)

	w = watchFewestReady(n1, "svc")
	putFleetJSON(t, n1, "svc", `{"replicas": 4, "versions": [{"blueprint": "svc", "version": 3}], "update": {"max_parallel": 1, "auto_rollback": true, "deadline": "3s"}}`)
	res = runCLIWithin(t, 90*time.Second, env, "fleet", "rollout", "svc")
	fewest, _ = w.end()
	if res.Code == 0 || !strings.Contains(res.Stdout, "rolled back") {
		t.Fatalf("rollout to the failing version 3 should fail and roll back:\n%s", res)
	}
	if fewest < 4 {
		t.Fatalf("while version 3 failed only %d ships were ready, want the 4 of version 2", fewest)
	}
	for _, s := range readyShips(t, n1, "svc", 4) {
		if got := mainPID(t, byName(nodes, s.Node), worker.UnitName(s.ID)); s.Version != 2 || got != pids[s.ID] {
			t.Fatalf("after the rollback ship %s (version %d) has MainPID %d, was %d", s.ID, s.Version, got, pids[s.ID])
		}
	}
}
