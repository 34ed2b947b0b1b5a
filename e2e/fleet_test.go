package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Fleets of real ship processes: placement, scaling, drains, node and
// leader deaths, worker restarts, logs. Every ship runs a real long-lived
// process whose environment carries E2E_RUN=<token of the test>, so the
// tests find each test's ship processes in /proc and check them against
// the ship records: one process per ship, with the ship's id and port,
// under the armada process of the ship's node, and none left after the
// test.

const sleeperUnit = "[Service]\nExecStart=/bin/sleep 100000\n"

func TestFleetSpreadsAndSurvivesNodeLoss(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	applyBlueprint(t, api, "sleeper", token, sleeperUnit, 8)
	applyFleet(t, api, "web", "sleeper", 6)

	var before []shipRec
	took := waitFor(t, 30*time.Second, func() error {
		var err error
		before, err = checkFleet(api, "web", token, 6, nil)
		return err
	})
	t.Logf("6 ships ready %s after the fleet was applied", took.Round(time.Millisecond))
	if got := perNode(before); !equalCounts(got, map[string]int{"n1": 2, "n2": 2, "n3": 2}) {
		t.Fatalf("spread fleet of 6 on 3 nodes placed %v, want 2 on each", got)
	}

	victim := nonLeader(nodes, leader)
	var victimShips []string
	for _, s := range before {
		if s.Node == victim.Name {
			victimShips = append(victimShips, s.ID)
		}
	}
	survivors := without(nodes, victim)
	allowed := map[string]bool{}
	for _, n := range survivors {
		allowed[n.Name] = true
	}

	killedAt := time.Now()
	victim.Kill()
	t.Logf("SIGKILLed %s, which ran ships %v", victim.Name, victimShips)

	// Its ship processes die with it (Pdeathsig), at once.
	waitFor(t, 5*time.Second, func() error {
		for _, p := range shipProcs(token) {
			if slices.Contains(victimShips, p.Ship) {
				return fmt.Errorf("process %d of ship %s (on killed %s) still runs", p.PID, p.Ship, victim.Name)
			}
		}
		return nil
	})

	var after []shipRec
	waitFor(t, 30*time.Second, func() error {
		var err error
		if after, err = checkFleet(api, "web", token, 6, allowed); err != nil {
			return err
		}
		return checkStates(api, "web", victimShips, "lost")
	})
	t.Logf("kill of %s -> 6 ships ready on %s and %s: %s (lost grace 2s)",
		victim.Name, survivors[0].Name, survivors[1].Name, time.Since(killedAt).Round(time.Millisecond))
	if got := perNode(after); !equalCounts(got, map[string]int{survivors[0].Name: 3, survivors[1].Name: 3}) {
		t.Errorf("after the loss of %s the fleet is placed %v, want 3 on each survivor", victim.Name, got)
	}
	kept := 0
	for _, s := range after {
		if slices.ContainsFunc(before, func(b shipRec) bool { return b.ID == s.ID }) {
			kept++
		}
	}
	if kept != 4 {
		t.Errorf("%d of the 4 ships on the survivors kept running through the loss, want all 4", kept)
	}
	all, err := fleetShips(api, "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		if slices.Contains(victimShips, s.ID) && !strings.Contains(s.Reason, victim.Name) {
			t.Errorf("lost ship %s: reason %q does not name its node %s", s.ID, s.Reason, victim.Name)
		}
	}
}

func TestFleetScaleDown(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	env := []string{"ARMADA_ADDR=" + nonLeader(nodes, leader).BaseURL()}
	applyBlueprint(t, api, "sleeper", token, sleeperUnit, 8)
	applyFleet(t, api, "web", "sleeper", 6)
	var six []shipRec
	waitFor(t, 30*time.Second, func() error {
		var err error
		six, err = checkFleet(api, "web", token, 6, nil)
		return err
	})
	pids := map[string]int{} // ship -> its process
	for _, p := range shipProcs(token) {
		pids[p.Ship] = p.PID
	}

	res := mustCLI(t, env, "fleet", "scale", "web", "2")
	if !strings.Contains(res.Stdout, "fleet web: 2 replicas") {
		t.Errorf("fleet scale web 2: unexpected output\n%s", res)
	}
	var two []shipRec
	took := waitFor(t, 20*time.Second, func() error {
		var err error
		if two, err = checkFleet(api, "web", token, 2, nil); err != nil {
			return err
		}
		var stopped []string
		for _, s := range six {
			if !slices.ContainsFunc(two, func(k shipRec) bool { return k.ID == s.ID }) {
				stopped = append(stopped, s.ID)
			}
		}
		if len(stopped) != 4 {
			return fmt.Errorf("%d of the 6 first ships are gone from the live ones, want 4 (ready now: %v)", len(stopped), ids(two))
		}
		return checkStates(api, "web", stopped, "stopped")
	})
	t.Logf("scale 6 -> 2: 2 ready and 4 stopped after %s", took.Round(time.Millisecond))
	if got := perNode(two); len(got) != 2 {
		t.Errorf("after scaling a spread fleet to 2 its ships are on %v, want two nodes", got)
	}
	// The stopped ships' processes are really gone, and the kept ones
	// were not restarted.
	for _, s := range six {
		pid := pids[s.ID]
		kept := slices.ContainsFunc(two, func(k shipRec) bool { return k.ID == s.ID })
		alive := procRuns(pid, s.ID)
		switch {
		case kept && !alive:
			t.Errorf("kept ship %s: its process %d is gone (restarted?)", s.ID, pid)
		case !kept && alive:
			t.Errorf("stopped ship %s: its process %d still runs", s.ID, pid)
		}
	}

	mustCLI(t, env, "fleet", "scale", "web", "4")
	var four []shipRec
	took = waitFor(t, 20*time.Second, func() error {
		var err error
		four, err = checkFleet(api, "web", token, 4, nil)
		return err
	})
	t.Logf("scale 2 -> 4: 4 ready after %s", took.Round(time.Millisecond))
	counts := perNode(four)
	lo, hi := 4, 0
	for _, n := range nodes {
		lo, hi = min(lo, counts[n.Name]), max(hi, counts[n.Name])
	}
	if hi-lo > 1 {
		t.Errorf("spread fleet of 4 on 3 nodes is placed %v", counts)
	}
	for _, s := range two {
		if !procRuns(pids[s.ID], s.ID) {
			t.Errorf("ship %s: its process %d was replaced by the scale up", s.ID, pids[s.ID])
		}
	}
}

func TestDrainMovesShips(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	applyBlueprint(t, api, "sleeper", token, sleeperUnit, 8)
	applyFleet(t, api, "web", "sleeper", 6)
	var before []shipRec
	waitFor(t, 30*time.Second, func() error {
		var err error
		before, err = checkFleet(api, "web", token, 6, nil)
		return err
	})
	drained := nonLeader(nodes, leader)
	others := without(nodes, drained)
	allowed := map[string]bool{others[0].Name: true, others[1].Name: true}
	var drainedShips []string
	for _, s := range before {
		if s.Node == drained.Name {
			drainedShips = append(drainedShips, s.ID)
		}
	}
	if len(drainedShips) != 2 {
		t.Fatalf("%s runs %d ships of the fleet, want 2", drained.Name, len(drainedShips))
	}

	// Through a node other than the drained one and the leader. A
	// watcher lists the fleet's ships over and over while the drain runs
	// (each listing is one consistent view of the leader's state): at no
	// point may fewer than 6 ships be ready.
	env := []string{"ARMADA_ADDR=" + nonLeader(others, leader).BaseURL()}
	w := watchReady(api, "web")
	res := mustCLI(t, env, "node", "drain", drained.Name)
	if !strings.Contains(res.Stdout, "node "+drained.Name+": draining") {
		t.Errorf("node drain: unexpected output\n%s", res)
	}
	startedAt := time.Now()
	waitFor(t, 30*time.Second, func() error {
		if _, err := checkFleet(api, "web", token, 6, allowed); err != nil {
			return err
		}
		return checkStates(api, "web", drainedShips, "stopped")
	})
	minReady, observations, lowest, werr := w.stop()
	t.Logf("drain of %s: 6 ready on %s and %s, its 2 ships stopped, after %s (%d listings watched; fewest ready %d)",
		drained.Name, others[0].Name, others[1].Name, time.Since(startedAt).Round(time.Millisecond), observations, minReady)
	if werr != nil {
		t.Errorf("watching the drain: %v", werr)
	}
	if observations < 5 {
		t.Errorf("only %d listings watched during the drain", observations)
	}
	if minReady < 6 {
		t.Errorf("during the drain one listing had only %d ships ready, want never fewer than 6:\n%s", minReady, shipsTable(lowest))
	}
	for _, s := range mustFleetShips(t, api, "web") {
		if slices.Contains(drainedShips, s.ID) {
			t.Logf("drained ship %s: %s, reason %q", s.ID, s.State, s.Reason)
		}
	}
	if got := mustNodeRecord(t, api, drained.Name); !got.Drain {
		t.Errorf("node %s: drain %v after `node drain`, want true", drained.Name, got.Drain)
	}

	// Undrained, the node takes ships again: a spread scale-up fills it.
	res = mustCLI(t, env, "node", "undrain", drained.Name)
	if !strings.Contains(res.Stdout, "node "+drained.Name+": not draining") {
		t.Errorf("node undrain: unexpected output\n%s", res)
	}
	mustCLI(t, env, "fleet", "scale", "web", "9")
	var nine []shipRec
	waitFor(t, 30*time.Second, func() error {
		var err error
		nine, err = checkFleet(api, "web", token, 9, nil)
		return err
	})
	if got := perNode(nine); !equalCounts(got, map[string]int{"n1": 3, "n2": 3, "n3": 3}) {
		t.Errorf("after undrain and scale to 9 the fleet is placed %v, want 3 on each node", got)
	}
}

// TestDrainWaitsForRoom drains a node while the other nodes have no room
// for its ships: they keep running until a new node brings room, and stop
// only once their replacements run there.
func TestDrainWaitsForRoom(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	// Ships of half a node's memory: two fill a node (all nodes run on this
	// machine, so they have the same capacity).
	capMB := mustNodeRecord(t, api, "n1").Capacity.MemoryMB
	half := capMB / 2
	applyBlueprint(t, api, "half", token, sleeperUnit, half)
	applyFleet(t, api, "half", "half", 6)
	var before []shipRec
	waitFor(t, 30*time.Second, func() error {
		var err error
		before, err = checkFleet(api, "half", token, 6, nil)
		return err
	})
	if got := perNode(before); !equalCounts(got, map[string]int{"n1": 2, "n2": 2, "n3": 2}) {
		t.Fatalf("fleet of 6 ships of %d MB (nodes have %d MB) placed %v, want 2 on each", half, capMB, got)
	}
	drained := nonLeader(nodes, leader)
	var drainedShips []string
	for _, s := range before {
		if s.Node == drained.Name {
			drainedShips = append(drainedShips, s.ID)
		}
	}
	w := watchReady(api, "half")
	mustCLI(t, []string{"ARMADA_ADDR=" + api.BaseURL()}, "node", "drain", drained.Name)

	// Two replacements wait for room; the drained node's ships keep running.
	// One node drains, the two others lack memory.
	wantWords := []string{"3 nodes checked", "1 draining", fmt.Sprintf("2 without %d MB memory free", half)}
	waiting := func() error {
		ships, err := fleetShips(api, "half")
		if err != nil {
			return err
		}
		queued := 0
		for _, s := range ships {
			switch {
			case slices.Contains(drainedShips, s.ID):
				if s.State != "ready" {
					return fmt.Errorf("ship %s on drained %s is %s (%s) with no replacement running", s.ID, s.Node, s.State, s.Reason)
				}
			case s.State == "queued":
				queued++
				for _, w := range wantWords {
					if !strings.Contains(s.Reason, w) {
						return fmt.Errorf("replacement %s waits with reason %q, want it to say %q", s.ID, s.Reason, w)
					}
				}
			case s.State != "ready":
				return fmt.Errorf("ship %s on %s is %s", s.ID, s.Node, s.State)
			}
		}
		if queued != 2 {
			return fmt.Errorf("%d replacements queued, want 2:\n%s", queued, shipsTable(ships))
		}
		if n := len(shipProcs(token)); n != 6 {
			return fmt.Errorf("%d ship processes run, want the 6 first ones", n)
		}
		return nil
	}
	waitFor(t, 10*time.Second, waiting)
	// And it stays so over several scheduler passes (1s apart).
	for until := time.Now().Add(2500 * time.Millisecond); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
		if err := waiting(); err != nil {
			t.Fatalf("while nothing has room: %v", err)
		}
	}

	// A fourth node brings room: the replacements run there, then the
	// drained node's ships stop.
	n4 := c.StartNode("n4", nodes[0].GossipAddr)
	addedAt := time.Now()
	allowed := map[string]bool{"n4": true}
	for _, n := range without(nodes, drained) {
		allowed[n.Name] = true
	}
	var after []shipRec
	waitFor(t, 30*time.Second, func() error {
		var err error
		if after, err = checkFleet(api, "half", token, 6, allowed); err != nil {
			return err
		}
		return checkStates(api, "half", drainedShips, "stopped")
	})
	minReady, listings, lowest, werr := w.stop()
	t.Logf("%s joined; 6 ready on %v and %s's ships stopped %s later (%d listings watched, fewest ready %d)",
		n4.Name, perNode(after), drained.Name, time.Since(addedAt).Round(time.Millisecond), listings, minReady)
	if werr != nil {
		t.Errorf("watching the drain: %v", werr)
	}
	if minReady < 6 {
		t.Errorf("during the drain one listing had only %d ships ready, want never fewer than 6:\n%s", minReady, shipsTable(lowest))
	}
	if got := perNode(after)["n4"]; got != 2 {
		t.Errorf("%d ships on the new node n4, want the 2 replacements", got)
	}
}

func TestLeaderKilledMidScaleNoLossNoDoubles(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	nodes, _ := formCluster(t, c, 3)
	st, err := nodes[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	leader := byName(nodes, st.Leader)
	if leader == nil {
		t.Fatalf("/v1/status names leader %q, none of the nodes", st.Leader)
	}
	waitSchedulable(t, leader, nodes)
	applyBlueprint(t, leader, "sleeper", token, sleeperUnit, 8)
	applyFleet(t, leader, "web", "sleeper", 2)
	waitFor(t, 30*time.Second, func() error {
		_, err := checkFleet(leader, "web", token, 2, nil)
		return err
	})

	r, err := leader.Do(http.MethodPost, "/v1/fleets/web/scale", []byte(`{"replicas": 30}`), "application/json")
	if err != nil || r.Status != http.StatusOK {
		t.Fatalf("scale to 30: %v %v", r, err)
	}
	killedAt := time.Now()
	leader.Kill()
	survivors := without(nodes, leader)
	t.Logf("scaled to 30 and SIGKILLed leader %s", leader.Name)

	var newLeader string
	waitFor(t, 15*time.Second, func() error {
		l, err := agreedLeader(survivors...)
		if err != nil {
			return err
		}
		if byName(survivors, l) == nil {
			return fmt.Errorf("survivors follow %s", l)
		}
		newLeader = l
		return nil
	})
	elected := time.Since(killedAt)
	api := byName(survivors, newLeader)
	allowed := map[string]bool{survivors[0].Name: true, survivors[1].Name: true}
	var ready []shipRec
	waitFor(t, 60*time.Second, func() error {
		var err error
		ready, err = checkFleet(api, "web", token, 30, allowed)
		return err
	})
	t.Logf("kill of leader %s -> new leader %s after %s; 30 ships ready on the survivors %s after the kill",
		leader.Name, newLeader, elected.Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond))

	var f struct {
		Replicas int `json:"replicas"`
	}
	if r, err := api.Get("/v1/fleets/web"); err != nil || r.Status != http.StatusOK || json.Unmarshal(r.Body, &f) != nil {
		t.Fatalf("GET /v1/fleets/web: %v %v", r, err)
	}
	if f.Replicas != 30 {
		t.Errorf("fleet replicas %d after the failover, want the acknowledged 30", f.Replicas)
	}
	all := mustFleetShips(t, api, "web")
	seen := map[string]bool{}
	states := map[string]int{}
	for _, s := range all {
		if seen[s.ID] {
			t.Errorf("ship %s listed twice", s.ID)
		}
		seen[s.ID] = true
		states[s.State]++
		if s.State == "lost" && s.Node != leader.Name {
			t.Errorf("ship %s on %s is lost; only the killed %s's ships may be", s.ID, s.Node, leader.Name)
		}
	}
	t.Logf("fleet ships by state: %v; on survivors: %v", states, perNode(ready))
}

func TestShipLogsAndStop(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	applyBlueprint(t, api, "echo", token, "[Service]\nExecStart=/bin/sh -c 'echo hello $ARMADA_SHIP_ID; exec sleep 100000'\n", 8)
	applyFleet(t, api, "echo", "echo", 2)
	var ships []shipRec
	waitFor(t, 30*time.Second, func() error {
		var err error
		ships, err = checkFleet(api, "echo", token, 2, nil)
		return err
	})
	ship := ships[0]
	runs := byName(nodes, ship.Node)
	var other *Node
	for _, n := range nodes {
		if n.Name != ship.Node {
			other = n
			break
		}
	}
	want := "hello " + ship.ID + "\n"
	for _, n := range []*Node{runs, other} {
		env := []string{"ARMADA_ADDR=" + n.BaseURL()}
		var last CLIResult
		waitFor(t, 10*time.Second, func() error {
			last = runCLI(t, env, "ship", "logs", ship.ID)
			if last.Code != 0 || last.Stdout != want {
				return fmt.Errorf("through %s (ship on %s): want exactly %q\n%s", n.Name, ship.Node, want, last)
			}
			return nil
		})
	}

	pid := 0
	for _, p := range shipProcs(token) {
		if p.Ship == ship.ID {
			pid = p.PID
		}
	}
	res := mustCLI(t, []string{"ARMADA_ADDR=" + other.BaseURL()}, "ship", "stop", ship.ID)
	t.Logf("ship stop %s:\n%s", ship.ID, res.Stdout)
	var now []shipRec
	took := waitFor(t, 20*time.Second, func() error {
		if err := checkStates(api, "echo", []string{ship.ID}, "stopped"); err != nil {
			return err
		}
		var err error
		if now, err = checkFleet(api, "echo", token, 2, nil); err != nil {
			return err
		}
		if slices.ContainsFunc(now, func(s shipRec) bool { return s.ID == ship.ID }) {
			return fmt.Errorf("stopped ship %s is among the ready ones", ship.ID)
		}
		return nil
	})
	t.Logf("ship %s stopped and replaced after %s; ready now %v", ship.ID, took.Round(time.Millisecond), ids(now))
	if procRuns(pid, ship.ID) {
		t.Errorf("stopped ship %s: process %d still runs", ship.ID, pid)
	}
	if !slices.ContainsFunc(now, func(s shipRec) bool { return s.ID == ships[1].ID }) {
		t.Errorf("ship %s, not stopped, is not ready any more: %v", ships[1].ID, ids(now))
	}
}

func TestUnplaceableShipWaitsWithReason(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	const mem = 10_000_000
	for _, n := range nodes {
		rec := mustNodeRecord(t, api, n.Name)
		if rec.Capacity.MemoryMB >= mem {
			t.Fatalf("node %s has %d MB; the test needs nodes under %d MB", n.Name, rec.Capacity.MemoryMB, mem)
		}
	}
	applyBlueprint(t, api, "huge", token, sleeperUnit, mem)
	applyFleet(t, api, "huge", "huge", 1)
	wantReason := fmt.Sprintf("no node with %d MB memory free; 3 nodes checked", mem)
	check := func() error {
		ships, err := fleetShips(api, "huge")
		if err != nil {
			return err
		}
		if len(ships) != 1 {
			return fmt.Errorf("fleet huge has %d ships, want 1:\n%s", len(ships), shipsTable(ships))
		}
		s := ships[0]
		if s.State != "queued" || s.Node != "" || !strings.HasPrefix(s.Reason, wantReason) {
			return fmt.Errorf("ship %s: state %s, node %q, reason %q; want queued, no node, reason starting %q", s.ID, s.State, s.Node, s.Reason, wantReason)
		}
		if procs := shipProcs(token); len(procs) != 0 {
			return fmt.Errorf("an unplaceable ship has processes: %+v", procs)
		}
		return nil
	}
	took := waitFor(t, 15*time.Second, check)
	t.Logf("ship queued with the reason after %s", took.Round(time.Millisecond))
	// It keeps waiting: several scheduler passes (1s each) change nothing.
	until := time.Now().Add(2500 * time.Millisecond)
	for time.Now().Before(until) {
		if err := check(); err != nil {
			t.Fatalf("the waiting ship changed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The CLI shows it too, reason included.
	res := mustCLI(t, []string{"ARMADA_ADDR=" + nonLeader(nodes, leader).BaseURL()}, "ship", "list", "--fleet", "huge")
	if !strings.Contains(res.Stdout, "queued") || !strings.Contains(res.Stdout, wantReason) {
		t.Errorf("ship list --fleet huge: want the queued ship with its reason\n%s", res)
	}
	var f struct {
		Status struct {
			Queued int `json:"queued"`
			Ready  int `json:"ready"`
		} `json:"status"`
	}
	if r, err := api.Get("/v1/fleets/huge"); err != nil || r.Status != http.StatusOK || json.Unmarshal(r.Body, &f) != nil {
		t.Fatalf("GET /v1/fleets/huge: %v %v", r, err)
	}
	if f.Status.Queued != 1 || f.Status.Ready != 0 {
		t.Errorf("fleet huge status: %d queued, %d ready; want 1 and 0", f.Status.Queued, f.Status.Ready)
	}
}

func TestWorkerRestartCleansUpAndRestarts(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	c.Extra = []string{"--lost-grace", "30s"}
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	// The main process forks a helper: Pdeathsig ends the main process
	// with a SIGKILLed worker, not the helper; the restarted worker must.
	applyBlueprint(t, api, "forker", token, "[Service]\nExecStart=/bin/sh -c 'sleep 100000 & exec sleep 100000'\n", 8)
	applyFleet(t, api, "forker", "forker", 3)
	var before []shipRec
	var procs map[string][]shipProc
	waitFor(t, 30*time.Second, func() error {
		var err error
		before, procs, err = checkForkerFleet(api, token, nil)
		return err
	})
	if got := perNode(before); !equalCounts(got, map[string]int{"n1": 1, "n2": 1, "n3": 1}) {
		t.Fatalf("spread fleet of 3 placed %v, want one per node", got)
	}
	victim := nonLeader(nodes, leader)
	var victimShip shipRec
	for _, s := range before {
		if s.Node == victim.Name {
			victimShip = s
		}
	}
	oldPIDs := map[int]string{}
	for id, ps := range procs {
		for _, p := range ps {
			oldPIDs[p.PID] = id
		}
	}

	victim.Kill()
	killedAt := time.Now()
	// Its main process dies with it (Pdeathsig); its helper, a grandchild
	// of the worker, is left behind.
	var victimMain shipProc
	for _, p := range procs[victimShip.ID] {
		if p.Node != "" {
			victimMain = p
		}
	}
	var orphans []int
	waitFor(t, 5*time.Second, func() error {
		if procRuns(victimMain.PID, victimShip.ID) {
			return fmt.Errorf("main process %d of ship %s still runs after its worker was killed", victimMain.PID, victimShip.ID)
		}
		orphans = nil
		for _, p := range shipProcs(token) {
			if p.Ship == victimShip.ID {
				orphans = append(orphans, p.PID)
			}
		}
		return nil
	})
	t.Logf("SIGKILLed %s; ship %s's main process died with it; %d orphaned helper(s) left: %v", victim.Name, victimShip.ID, len(orphans), orphans)

	// The survivors declare it dead; within the lost grace its ships stay
	// where they are, not lost.
	waitFor(t, 20*time.Second, func() error {
		rec, err := nodeRecord(api, victim.Name)
		if err != nil {
			return err
		}
		if rec.Status != "dead" {
			return fmt.Errorf("%s is %s, want dead", victim.Name, rec.Status)
		}
		return nil
	})
	if err := checkStates(api, "forker", []string{victimShip.ID}, "ready"); err != nil {
		t.Errorf("within the lost grace: %v", err)
	}
	victim.Restart()
	t.Logf("restarted %s %s after the kill, once it was dead (lost grace 30s)", victim.Name, time.Since(killedAt).Round(time.Millisecond))
	var after []shipRec
	took := waitFor(t, 25*time.Second, func() error {
		var err error
		after, procs, err = checkForkerFleet(api, token, nil)
		if err != nil {
			return err
		}
		for _, s := range after {
			for _, p := range procs[s.ID] {
				_, old := oldPIDs[p.PID]
				if s.ID == victimShip.ID && old {
					return fmt.Errorf("ship %s on restarted %s: process %d is from before the kill", s.ID, victim.Name, p.PID)
				}
				if s.ID != victimShip.ID && !old {
					return fmt.Errorf("ship %s on %s: process %d is new; it was not to be touched", s.ID, s.Node, p.PID)
				}
			}
		}
		return nil
	})
	t.Logf("restarted %s runs ship %s afresh %s after its restart", victim.Name, victimShip.ID, took.Round(time.Millisecond))
	if !slices.Equal(ids(after), ids(before)) {
		t.Errorf("ships after the restart %v, want the same ships as before %v (none lost or replaced)", ids(after), ids(before))
	}
	all := mustFleetShips(t, api, "forker")
	if len(all) != 3 {
		t.Errorf("fleet has %d ships, want the 3 first ones only:\n%s", len(all), shipsTable(all))
	}
	for _, pid := range orphans {
		if procRuns(pid, victimShip.ID) {
			t.Errorf("orphaned helper %d of ship %s survived the worker restart", pid, victimShip.ID)
		}
	}
	for pid, id := range oldPIDs {
		if id == victimShip.ID && procRuns(pid, id) {
			t.Errorf("process %d of ship %s from before the kill still runs", pid, id)
		}
	}

	// Deleting the fleet stops every ship with its helpers.
	if r, err := api.Do(http.MethodDelete, "/v1/fleets/forker", nil, ""); err != nil || r.Status != http.StatusOK {
		t.Fatalf("DELETE /v1/fleets/forker: %v %v", r, err)
	}
	waitFor(t, 20*time.Second, func() error {
		if ps := shipProcs(token); len(ps) > 0 {
			return fmt.Errorf("%d processes of the deleted fleet still run: %+v", len(ps), ps)
		}
		return nil
	})
}

// checkForkerFleet checks the forker fleet of 3: every ship ready with
// exactly a main process under its node's armada and one helper child
// of it. It returns the ships and their processes.
func checkForkerFleet(api *Node, token string, allowed map[string]bool) ([]shipRec, map[string][]shipProc, error) {
	ships, err := fleetShips(api, "forker")
	if err != nil {
		return nil, nil, err
	}
	var live []shipRec
	for _, s := range ships {
		if s.ended() {
			continue
		}
		if s.State != "ready" {
			return nil, nil, fmt.Errorf("ship %s on %s is %s (%s)", s.ID, s.Node, s.State, s.Reason)
		}
		if allowed != nil && !allowed[s.Node] {
			return nil, nil, fmt.Errorf("ship %s is on %s", s.ID, s.Node)
		}
		live = append(live, s)
	}
	if len(live) != 3 {
		return nil, nil, fmt.Errorf("%d ships ready, want 3", len(live))
	}
	byShip := map[string][]shipProc{}
	for _, p := range shipProcs(token) {
		byShip[p.Ship] = append(byShip[p.Ship], p)
	}
	for _, s := range live {
		ps := byShip[s.ID]
		if len(ps) != 2 {
			return nil, nil, fmt.Errorf("ship %s has %d processes, want a main process and its helper: %+v", s.ID, len(ps), ps)
		}
		var main, helper *shipProc
		for i := range ps {
			if ps[i].Node != "" {
				main = &ps[i]
			} else {
				helper = &ps[i]
			}
		}
		if main == nil || helper == nil || main.Node != s.Node || helper.PPID != main.PID || helper.PGID != main.PGID {
			return nil, nil, fmt.Errorf("ship %s on %s: processes %+v are not its main process under %s and a helper child of it", s.ID, s.Node, ps, s.Node)
		}
	}
	if len(byShip) != len(live) {
		return nil, nil, fmt.Errorf("processes of %d ships run, want %d: %v", len(byShip), len(live), byShip)
	}
	return live, byShip, nil
}

// ---- helpers: fleets, ships and their processes ----

// shipRec is a ship as GET /v1/ships returns it.
type shipRec struct {
	ID        string         `json:"id"`
	Fleet     string         `json:"fleet"`
	Blueprint string         `json:"blueprint"`
	Version   int            `json:"version"`
	Node      string         `json:"node"`
	State     string         `json:"state"`
	Desired   string         `json:"desired"`
	Ports     map[string]int `json:"ports"`
	Address   string         `json:"address"`
	Reason    string         `json:"reason"`
	Created   int64          `json:"created"`
	Updated   int64          `json:"updated"`
}

func (s shipRec) ended() bool {
	return s.State == "stopped" || s.State == "failed" || s.State == "lost"
}

// shipToken is a token unique to the test for E2E_RUN, the environment
// variable that marks its ship processes. It registers a cleanup that
// runs after the cluster's (so after every node was killed): it fails the
// test if any of the test's ship processes outlived their nodes, and ends
// them. Call it before NewCluster.
func shipToken(t *testing.T) string {
	t.Helper()
	token := fmt.Sprintf("%s-%d-%d", t.Name(), os.Getpid(), time.Now().UnixNano())
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		left := shipProcs(token)
		for len(left) > 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
			left = shipProcs(token)
		}
		if len(left) == 0 {
			return
		}
		t.Errorf("%d ship processes outlived the test's nodes; killing them: %+v", len(left), left)
		for _, p := range left {
			_ = syscall.Kill(p.PID, syscall.SIGKILL)
		}
	})
	return token
}

// applyBlueprint puts a blueprint with one port "web", 10 MHz and memMB of
// memory, and E2E_RUN=token in its environment.
func applyBlueprint(t *testing.T, n *Node, name, token, unit string, memMB int64) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"name": name, "unit": unit,
		"resources": map[string]int64{"cpu_mhz": 10, "memory_mb": memMB},
		"ports":     []map[string]string{{"name": "web"}},
		"env":       map[string]string{"E2E_RUN": token},
	})
	if r, err := writeAPI(n, http.MethodPut, "/v1/blueprints/"+name, body, 20*time.Second); err != nil {
		t.Fatalf("put blueprint %s: %v %v", name, r, err)
	}
}

// applyFleet puts a spread fleet of replicas ships of the latest version of
// blueprint.
func applyFleet(t *testing.T, n *Node, name, blueprint string, replicas int) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"name": name, "replicas": replicas,
		"versions":  []map[string]any{{"blueprint": blueprint}},
		"placement": map[string]string{"strategy": "spread"},
	})
	if r, err := writeAPI(n, http.MethodPut, "/v1/fleets/"+name, body, 20*time.Second); err != nil {
		t.Fatalf("put fleet %s: %v %v", name, r, err)
	}
}

// writeAPI sends a JSON write, retrying while the cluster answers 503 or
// the node does not answer, until timeout; any other non-2xx is an error.
func writeAPI(n *Node, method, path string, body []byte, timeout time.Duration) (*Resp, error) {
	deadline := time.Now().Add(timeout)
	for {
		r, err := n.Do(method, path, body, "application/json")
		switch {
		case err == nil && r.Status/100 == 2:
			return r, nil
		case err == nil && r.Status != http.StatusServiceUnavailable:
			return r, fmt.Errorf("%s %s on %s: %s", method, path, n.Name, r)
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = errors.New(r.String())
			}
			return r, fmt.Errorf("%s %s on %s: no success in %s: %w", method, path, n.Name, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fleetShips lists every ship of a fleet, ended ones included.
func fleetShips(n *Node, fleet string) ([]shipRec, error) {
	r, err := n.Get("/v1/ships?fleet=" + url.QueryEscape(fleet))
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/ships?fleet=%s on %s: %s", fleet, n.Name, r)
	}
	var out []shipRec
	if err := json.Unmarshal(r.Body, &out); err != nil {
		return nil, fmt.Errorf("GET /v1/ships on %s: %w: %s", n.Name, err, r.Body)
	}
	return out, nil
}

// nodeRec is the part of a node record these tests read.
type nodeRec struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Worker     bool   `json:"worker"`
	Drain      bool   `json:"drain"`
	PortsRange string `json:"ports_range"`
	Capacity   struct {
		MemoryMB int64 `json:"memory_mb"`
	} `json:"capacity"`
}

// waitSchedulable waits until api's state has every node of nodes alive,
// running ships, with its capacity and its ports range (which its worker
// reports once it runs): a fleet applied before then may find only some
// of the nodes able to take ships, and spread over those.
func waitSchedulable(t *testing.T, api *Node, nodes []*Node) {
	t.Helper()
	waitFor(t, 20*time.Second, func() error {
		for _, n := range nodes {
			rec, err := nodeRecord(api, n.Name)
			if err != nil {
				return err
			}
			if rec.Status != "alive" || !rec.Worker || rec.PortsRange == "" || rec.Capacity.MemoryMB <= 0 {
				return fmt.Errorf("node %s cannot take ships yet: %+v", n.Name, rec)
			}
		}
		return nil
	})
}

// readyWatch lists a fleet's ships over and over in the background and
// keeps the listing with the fewest ready (or allocated) ships.
type readyWatch struct {
	done chan struct{}
	out  chan readyWatchResult
}

type readyWatchResult struct {
	min, listings int
	lowest        []shipRec
	err           error
}

func watchReady(n *Node, fleet string) *readyWatch {
	w := &readyWatch{done: make(chan struct{}), out: make(chan readyWatchResult, 1)}
	go func() {
		res := readyWatchResult{min: -1}
		defer func() { w.out <- res }()
		for {
			select {
			case <-w.done:
				return
			default:
			}
			ships, err := fleetShips(n, fleet)
			if err != nil {
				res.err = err
				return
			}
			res.listings++
			ready := 0
			for _, s := range ships {
				if s.State == "ready" || s.State == "allocated" {
					ready++
				}
			}
			if res.min < 0 || ready < res.min {
				res.min, res.lowest = ready, ships
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return w
}

// stop ends the watch and returns the fewest ready ships one listing had,
// how many listings there were, that listing, and the error that ended
// the watch early, if any.
func (w *readyWatch) stop() (int, int, []shipRec, error) {
	close(w.done)
	r := <-w.out
	return r.min, r.listings, r.lowest, r.err
}

func nodeRecord(n *Node, name string) (nodeRec, error) {
	var rec nodeRec
	r, err := n.Get("/v1/nodes/" + name)
	if err != nil {
		return rec, err
	}
	if r.Status != http.StatusOK {
		return rec, fmt.Errorf("GET /v1/nodes/%s on %s: %s", name, n.Name, r)
	}
	return rec, json.Unmarshal(r.Body, &rec)
}

// checkFleet checks that a fleet runs exactly want ships, every one of
// them ready (none starting, stopping or otherwise between states), on
// the allowed nodes (nil: any), with distinct ports per node, and that
// each has exactly one process on this machine: its main process, under
// the armada process of its node, with its ARMADA_SHIP_ID and its port as
// ARMADA_PORT_WEB. No other process of the test's ships may run. It
// returns the ready ships, sorted by id.
func checkFleet(n *Node, fleet, token string, want int, allowed map[string]bool) ([]shipRec, error) {
	ships, err := fleetShips(n, fleet)
	if err != nil {
		return nil, err
	}
	var live []shipRec
	used := map[string]string{} // node/port -> ship
	for _, s := range ships {
		if s.ended() {
			continue
		}
		if s.State != "ready" {
			return nil, fmt.Errorf("ship %s on %q is %s (%s); want every live ship ready", s.ID, s.Node, s.State, s.Reason)
		}
		if allowed != nil && !allowed[s.Node] {
			return nil, fmt.Errorf("ready ship %s is on %s, want it on one of %v", s.ID, s.Node, slices.Sorted(maps.Keys(allowed)))
		}
		port := s.Ports["web"]
		if port <= 0 {
			return nil, fmt.Errorf("ready ship %s has no web port: %v", s.ID, s.Ports)
		}
		k := s.Node + "/" + strconv.Itoa(port)
		if other, dup := used[k]; dup {
			return nil, fmt.Errorf("ships %s and %s both hold port %d on %s", other, s.ID, port, s.Node)
		}
		used[k] = s.ID
		live = append(live, s)
	}
	if len(live) != want {
		return nil, fmt.Errorf("fleet %s: %d live ships, all ready, want %d:\n%s", fleet, len(live), want, shipsTable(ships))
	}
	procs := map[string][]shipProc{}
	total := 0
	for _, p := range shipProcs(token) {
		procs[p.Ship] = append(procs[p.Ship], p)
		total++
	}
	for _, s := range live {
		ps := procs[s.ID]
		if len(ps) != 1 {
			return nil, fmt.Errorf("ready ship %s on %s has %d processes, want 1: %+v", s.ID, s.Node, len(ps), ps)
		}
		p := ps[0]
		if p.Node != s.Node {
			return nil, fmt.Errorf("ship %s is on %s, its process %d runs under node %q", s.ID, s.Node, p.PID, p.Node)
		}
		if p.Port != strconv.Itoa(s.Ports["web"]) {
			return nil, fmt.Errorf("ship %s has port %d, its process %d got ARMADA_PORT_WEB=%q", s.ID, s.Ports["web"], p.PID, p.Port)
		}
	}
	if total != want {
		return nil, fmt.Errorf("%d ship processes run, want %d: %+v", total, want, procs)
	}
	sort.Slice(live, func(i, j int) bool { return live[i].ID < live[j].ID })
	return live, nil
}

// checkStates checks that each of the ships is in state.
func checkStates(n *Node, fleet string, shipIDs []string, state string) error {
	ships, err := fleetShips(n, fleet)
	if err != nil {
		return err
	}
	for _, id := range shipIDs {
		i := slices.IndexFunc(ships, func(s shipRec) bool { return s.ID == id })
		switch {
		case i < 0:
			return fmt.Errorf("ship %s is not listed any more (want it %s)", id, state)
		case ships[i].State != state:
			return fmt.Errorf("ship %s on %s is %s (%s), want %s", id, ships[i].Node, ships[i].State, ships[i].Reason, state)
		}
	}
	return nil
}

func shipsTable(ships []shipRec) string {
	var b strings.Builder
	for _, s := range ships {
		fmt.Fprintf(&b, "  %s node=%s state=%s desired=%s ports=%v reason=%q\n", s.ID, s.Node, s.State, s.Desired, s.Ports, s.Reason)
	}
	return b.String()
}

func perNode(ships []shipRec) map[string]int {
	out := map[string]int{}
	for _, s := range ships {
		out[s.Node]++
	}
	return out
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func ids(ships []shipRec) []string {
	out := make([]string, 0, len(ships))
	for _, s := range ships {
		out = append(out, s.ID)
	}
	slices.Sort(out)
	return out
}

// nonLeader is a node of nodes that is not the leader, preferring one
// that joined through a seed.
func nonLeader(nodes []*Node, leader string) *Node {
	var pick *Node
	for _, n := range nodes {
		if n.Name == leader {
			continue
		}
		if pick == nil || (len(pick.Seeds) == 0 && len(n.Seeds) > 0) {
			pick = n
		}
	}
	return pick
}

func without(nodes []*Node, drop *Node) []*Node {
	var out []*Node
	for _, n := range nodes {
		if n != drop {
			out = append(out, n)
		}
	}
	return out
}

func mustFleetShips(t *testing.T, n *Node, fleet string) []shipRec {
	t.Helper()
	ships, err := fleetShips(n, fleet)
	if err != nil {
		t.Fatal(err)
	}
	return ships
}

func mustNodeRecord(t *testing.T, n *Node, name string) nodeRec {
	t.Helper()
	rec, err := nodeRecord(n, name)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// shipProc is a live process of a test's ships, found in /proc.
type shipProc struct {
	PID, PPID, PGID int
	Ship            string // its ARMADA_SHIP_ID
	Port            string // its ARMADA_PORT_WEB
	Node            string // --name of its parent when that is an armada process; "" otherwise
}

// shipProcs scans /proc for the live (not zombie) processes whose
// environment holds E2E_RUN=token.
func shipProcs(token string) []shipProc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	mark := "E2E_RUN=" + token
	var out []shipProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || len(env) == 0 {
			continue // gone, or a zombie
		}
		vars := strings.Split(string(env), "\x00")
		if !slices.Contains(vars, mark) {
			continue
		}
		p := shipProc{PID: pid}
		for _, kv := range vars {
			if v, ok := strings.CutPrefix(kv, "ARMADA_SHIP_ID="); ok {
				p.Ship = v
			} else if v, ok := strings.CutPrefix(kv, "ARMADA_PORT_WEB="); ok {
				p.Port = v
			}
		}
		state, ppid, pgid, ok := procStat(pid)
		if !ok || state == 'Z' || state == 'X' {
			continue
		}
		p.PPID, p.PGID = ppid, pgid
		p.Node = armadaNodeName(ppid)
		out = append(out, p)
	}
	return out
}

// procRuns reports whether pid is a live process of ship id.
func procRuns(pid int, id string) bool {
	if pid <= 0 {
		return false
	}
	state, _, _, ok := procStat(pid)
	if !ok || state == 'Z' || state == 'X' {
		return false
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	return err == nil && slices.Contains(strings.Split(string(env), "\x00"), "ARMADA_SHIP_ID="+id)
}

// procStat reads state, parent and process group from /proc/<pid>/stat.
func procStat(pid int) (state byte, ppid, pgid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	pgid, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil {
		return 0, 0, 0, false
	}
	return f[0][0], ppid, pgid, true
}

// armadaNodeName is the --name of pid when it runs this package's armada
// binary, else "".
func armadaNodeName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return ""
	}
	argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(argv) < 2 || argv[0] != armadaBin || argv[1] != "join" {
		return ""
	}
	for i := 2; i+1 < len(argv); i++ {
		if argv[i] == "--name" {
			return argv[i+1]
		}
	}
	return ""
}

// TestLeaveDrainsShipsFirst: `armada leave` on a node that runs ships
// moves them first — never fewer than the fleet's ready ships while it
// goes — and the node exits once they run elsewhere.
func TestLeaveDrainsShipsFirst(t *testing.T) {
	token := shipToken(t)
	c := NewCluster(t)
	nodes, leader := formCluster(t, c, 3)
	api := byName(nodes, leader)
	waitSchedulable(t, api, nodes)
	applyBlueprint(t, api, "sleeper", token, sleeperUnit, 8)
	applyFleet(t, api, "web", "sleeper", 6)
	waitFor(t, 30*time.Second, func() error {
		_, err := checkFleet(api, "web", token, 6, nil)
		return err
	})
	leaving := nonLeader(nodes, leader)
	others := without(nodes, leaving)
	allowed := map[string]bool{others[0].Name: true, others[1].Name: true}

	w := watchReady(api, "web")
	mustCLI(t, nil, "leave", "--addr", leaving.BaseURL())
	exited, err := leaving.WaitExit(30 * time.Second)
	if !exited {
		t.Fatalf("%s still running 30s after `armada leave`", leaving.Name)
	}
	if err != nil {
		t.Errorf("%s exited with %v, want status 0", leaving.Name, err)
	}
	// By the time it exited its ships ran elsewhere.
	if _, err := checkFleet(api, "web", token, 6, allowed); err != nil {
		t.Errorf("when %s exited: %v", leaving.Name, err)
	}
	minReady, listings, lowest, werr := w.stop()
	if werr != nil {
		t.Errorf("watching the leave: %v", werr)
	}
	if minReady < 6 {
		t.Errorf("during the leave one of %d listings had only %d ships ready, want never fewer than 6:\n%s", listings, minReady, shipsTable(lowest))
	}
	for _, s := range mustFleetShips(t, api, "web") {
		if s.Node == leaving.Name && s.State != "stopped" {
			t.Errorf("ship %s of the node that left is %s, want stopped (moved before it left)", s.ID, s.State)
		}
	}
}
