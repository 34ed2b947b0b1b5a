package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The protocol adapter figures (issue 7): for etcd, ZooKeeper and Redis,
// the same client load against the reference server(s) and against the
// adapters of a 3-node Armada of the real binary, in one run, in rounds:
// each round starts one afresh, runs it and stops it, then does the same
// with the other, the two taking turns to go first. The machine's speed
// drifts over minutes, as much as the ratios the targets ask for; the
// ratios are the medians of the rounds' own ratios, so that the drift
// cancels out, and every round is shown. Each round runs the rows
// of adapterRows: writes and reads of keys that exist (every client's key
// is written before its row, outside the measured window) by 1 and by 64
// clients, each sending its next request as soon as the previous one is
// answered.

// adapterValueSize is the size of the values the adapter figures write.
const adapterValueSize = 256

// adapterRow is one row of each adapter figure.
type adapterRow struct {
	read    bool // the read op, else the write op
	clients int
}

// adapterRows are the rows of each adapter figure, in the order they run
// against the reference and then against Armada.
func adapterRows() []adapterRow {
	return []adapterRow{{false, 1}, {false, 64}, {true, 1}, {true, 64}}
}

// adapterClients is the client side of one row.
type adapterClients struct {
	write, read putFunc // worker w writes, or reads, its own key
	close       func()
}

// adapterLoad opens n clients, client i on addrs[i % len(addrs)], writes
// every client's key to value, and returns them.
type adapterLoad func(ctx context.Context, addrs []string, n int, value []byte) (adapterClients, error)

// adapterBench is what one protocol adapter's part measured: the adapter
// of a 3-node Armada against the reference, row by row of adapterRows.
type adapterBench struct {
	title, about    string
	refName         string         // the reference, by name
	writeOp, readOp string         // the operations, as the tables name them
	target          float64        // Armada / reference writes/s at 64 clients to reach; 0: the ratios are only reported
	p99NoWorse      bool           // the target also asks Armada's p99 ≤ the reference's (64-client writes)
	reference       []loadResult   // per row, its median round
	armada          []loadResult   // per row, its median round
	refRounds       [][]loadResult // per round, per row
	armRounds       [][]loadResult // per round, per row
}

// rowsText is the part of a section's text every adapter figure shares:
// the rows, the value, where the clients are (where) and the window.
func rowsText(cfg config, valueSize int, where string) string {
	rounds := "The same load runs against the reference and then against Armada, in the same run; the reference is " +
		"stopped before Armada starts."
	if cfg.adapterRounds > 1 {
		rounds = fmt.Sprintf("The same load runs against the reference and against Armada, in the same run, in %d rounds: "+
			"each round starts one afresh, runs every row and stops it, then does the same with the other, the reference "+
			"first in odd rounds and Armada first in even ones. The tables show each row's median round by ops/s "+
			"(its p50, p99 and CPU too); the ratios are the medians of the rounds' ratios, each round's two systems "+
			"having run minutes apart at most, so that a drift between rounds cancels out; the ops/s of every round "+
			"follow, and the target fails if any round had errors.", cfg.adapterRounds)
	}
	return fmt.Sprintf("Rows of 1 and of 64 clients, each writing or reading its own key as fast as the answers come back; "+
		"every key exists, written to a %d-byte value before its row, outside the measured window, and the writes "+
		"overwrite it with the same value. %s %s Each row runs %s unmeasured, then %s measured; "+
		"only requests answered inside the measured window count. The CPU per op is the user and system time "+
		"(`/proc/<pid>/stat`) over the measured window, divided by the requests answered in it: of all the servers' "+
		"processes together, and of the client, the benchmark's own process, which shares the machine with them.",
		valueSize, where, rounds, cfg.warmup, cfg.adapterDuration)
}

// leaderFirstText says how leaderFirst orders the servers.
const leaderFirstText = "server 0 being the leader, so a 1-client row talks to the leader; followers forward writes to the leader"

// leaderFirst is addrs with addrs[leader] moved to the front, so that a
// row's client 0 — the only one of a 1-client row — is on the leader.
func leaderFirst(addrs []string, leader int) []string {
	out := []string{addrs[leader]}
	for i, a := range addrs {
		if i != leader {
			out = append(out, a)
		}
	}
	return out
}

// runAdapterRows runs every row of adapterRows against the servers at
// addrs, opening each row's clients anew.
func runAdapterRows(ctx context.Context, cfg config, system, target string, addrs []string, procs []watched,
	load adapterLoad, value []byte) ([]loadResult, error) {
	var out []loadResult
	for _, row := range adapterRows() {
		cl, err := load(ctx, addrs, row.clients, value)
		if err != nil {
			return nil, err
		}
		put, op := cl.write, "write"
		if row.read {
			put, op = cl.read, "read"
		}
		res, err := runLoad(ctx, loadSpec{system: system, op: op, target: target, writers: row.clients, put: put, procs: procs},
			cfg.warmup, cfg.adapterDuration)
		cl.close()
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, nil
}

// runAdapterArmada measures one protocol adapter of a 3-node Armada of the
// real binary, started with flag (e.g. --zk-addr); serving matches the
// line each node logs with the adapter's address.
func runAdapterArmada(ctx context.Context, cfg config, bin, dir, flag string, serving *regexp.Regexp, target string,
	load adapterLoad, value []byte) (res []loadResult, err error) {
	slog.Info("starting a 3-node Armada cluster with an adapter", "flag", flag, "dir", dir)
	c, err := startArmada(bin, dir, 3, flag, "127.0.0.1:0")
	defer stopAfter(ctx, &err, c.logTails, c.stop)
	var leader *armadaNode
	if err == nil {
		leader, err = c.waitHealthy(ctx, 60*time.Second)
	}
	if err != nil {
		return nil, fmt.Errorf("armada cluster: %w", err)
	}
	var addrs []string
	li := 0
	for i, n := range c.nodes {
		b, err := os.ReadFile(n.proc.logPath)
		if err != nil {
			return nil, err
		}
		m := serving.FindSubmatch(b)
		if m == nil {
			return nil, fmt.Errorf("%s does not serve the adapter of %s", n.name, flag)
		}
		addrs = append(addrs, string(m[1]))
		if n == leader {
			li = i
		}
	}
	return runAdapterRows(ctx, cfg, "Armada", target, leaderFirst(addrs, li), c.watch(leader), load, value)
}

// stopAfter stops what a run started, printing its logs' tails first when
// the run failed (and was not cancelled).
func stopAfter(ctx context.Context, err *error, logTails, stop func()) {
	if *err != nil && ctx.Err() == nil {
		logTails()
	}
	stop()
}

// run measures, rounds times, the reference when it is installed, then
// Armada's adapter; each is given the round's number.
func (ab *adapterBench) run(rounds int, installed bool, what string, reference, armada func(round int) ([]loadResult, error)) (*adapterBench, error) {
	if !installed {
		slog.Warn("the reference is not installed: its figure will have none", "reference", ab.refName, "looked for", what)
	}
	for round := range rounds {
		steps := []func() error{
			func() error {
				if !installed {
					return nil
				}
				ref, err := reference(round)
				if err != nil {
					return fmt.Errorf("%s reference: %w", ab.refName, err)
				}
				ab.refRounds = append(ab.refRounds, ref)
				return nil
			},
			func() error {
				res, err := armada(round)
				ab.armRounds = append(ab.armRounds, res)
				return err
			},
		}
		// Alternate which goes first, so that a drift over the run does
		// not always favour the same one.
		if round%2 == 1 {
			slices.Reverse(steps)
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return nil, err
			}
		}
	}
	ab.reference, ab.armada = medianRounds(ab.refRounds), medianRounds(ab.armRounds)
	return ab, nil
}

// medianRounds is, for each row, the round with the median ops/s (the
// lower of the middle two of an even count).
func medianRounds(rounds [][]loadResult) []loadResult {
	if len(rounds) == 0 {
		return nil
	}
	out := make([]loadResult, len(rounds[0]))
	for i := range out {
		var row []loadResult
		for _, r := range rounds {
			if i < len(r) {
				row = append(row, r[i])
			}
		}
		slices.SortFunc(row, func(a, b loadResult) int { return cmp.Compare(a.rate(), b.rate()) })
		out[i] = row[(len(row)-1)/2]
	}
	return out
}

// cpuPerOp is the CPU time per answered request, inside the measured
// window, of all the servers together and of the client (the benchmark's
// own process): r.cpu is each server's, then the client's, then the
// machine's.
func cpuPerOp(r loadResult) (server, client string) {
	if len(r.cpu) < 3 || r.writes == 0 {
		return "—", "—"
	}
	var servers time.Duration
	for _, d := range r.cpu[:len(r.cpu)-2] {
		servers += d
	}
	per := func(d time.Duration) string {
		return fmt.Sprintf("%.0f µs", float64(d.Microseconds())/float64(r.writes))
	}
	return per(servers), per(r.cpu[len(r.cpu)-2])
}

// roundDir is the directory of one system's round.
func roundDir(name string, round int) string { return fmt.Sprintf("%s-%d", name, round+1) }

// op names a row's operation.
func (ab *adapterBench) op(row adapterRow) string {
	if row.read {
		return ab.readOp
	}
	return ab.writeOp
}

// markdown is the part's section of the report: the rows side by side,
// then Armada / reference per operation and client count, then the
// verdict on the target.
func (ab *adapterBench) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", ab.title, ab.about)
	b.WriteString("| System | Op | Clients | Ops/s | p50 | p99 | Max | Errors | Server CPU per op | Client CPU per op |\n" +
		"|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for i, row := range adapterRows() {
		var rs []loadResult
		if i < len(ab.reference) {
			rs = append(rs, ab.reference[i])
		}
		if i < len(ab.armada) {
			rs = append(rs, ab.armada[i])
		}
		for _, r := range rs {
			server, client := cpuPerOp(r)
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %d | %s | %s |\n", r.system, ab.op(row), row.clients,
				fmtRate(r.rate()), fmtMs(r.p50), fmtMs(r.p99), fmtMs(r.maxLatency), r.errors, server, client)
		}
	}
	if len(ab.reference) != len(adapterRows()) || len(ab.armada) != len(adapterRows()) {
		fmt.Fprintf(&b, "\n%s was not installed, so there is no reference", ab.refName)
		if ab.target > 0 {
			fmt.Fprintf(&b, " (target: 64-client %s ≥ %.0f× %s's)", ab.writeOp, ab.target, ab.refName)
		}
		b.WriteString(".\n")
		return b.String()
	}
	fmt.Fprintf(&b, "\n| Op | Clients | Armada / %[1]s ops/s | Armada / %[1]s p99 | Target |\n|---|--:|--:|--:|---|\n", ab.refName)
	for i, row := range adapterRows() {
		target := "— (reported)"
		if ab.targetRow(row) {
			target = fmt.Sprintf("ops/s ≥ %.0f×", ab.target)
			if ab.p99NoWorse {
				target += ", p99 ≤ 1×"
			}
		}
		fmt.Fprintf(&b, "| %s | %d | **%s** | %s | %s |\n", ab.op(row), row.clients,
			fmtX(ab.ratios(i, rateOf)), fmtX(ab.ratios(i, p99Of)), target)
	}
	ab.writeRounds(&b)
	if ab.target == 0 {
		fmt.Fprintf(&b, "\nNo target: the ratios are reported.\n")
		return b.String()
	}
	for i, row := range adapterRows() {
		if ab.targetRow(row) {
			ab.writeVerdict(&b, row, i)
		}
	}
	return b.String()
}

// writeRounds is the ops/s of every round, row by row, with each round's
// Armada / reference ratio when there is a reference, and its errors.
func (ab *adapterBench) writeRounds(b *strings.Builder) {
	if len(ab.armRounds) < 2 {
		return
	}
	withRef := len(ab.refRounds) == len(ab.armRounds)
	if withRef {
		fmt.Fprintf(b, "\nEvery round, ops/s (%[1]s / Armada, Armada / %[1]s):\n\n| Op | Clients |", ab.refName)
	} else {
		fmt.Fprintf(b, "\nEvery round, Armada's ops/s:\n\n| Op | Clients |")
	}
	for r := range ab.armRounds {
		fmt.Fprintf(b, " Round %d |", r+1)
	}
	b.WriteString("\n|---|--:|" + strings.Repeat("--:|", len(ab.armRounds)) + "\n")
	for i, row := range adapterRows() {
		fmt.Fprintf(b, "| %s | %d |", ab.op(row), row.clients)
		for r := range ab.armRounds {
			if i >= len(ab.armRounds[r]) || withRef && i >= len(ab.refRounds[r]) {
				b.WriteString(" — |")
				continue
			}
			arm := ab.armRounds[r][i]
			cell := fmtRate(arm.rate())
			if withRef {
				ref := ab.refRounds[r][i]
				cell = fmt.Sprintf("%s / %s, %s", fmtRate(ref.rate()), cell, rateRatio(arm, ref))
			}
			if arm.errors > 0 {
				cell += fmt.Sprintf(" (Armada: %d errors)", arm.errors)
			}
			fmt.Fprintf(b, " %s |", cell)
		}
		b.WriteString("\n")
	}
}

// targetRow reports whether the target applies to row: 64-client writes.
func (ab *adapterBench) targetRow(row adapterRow) bool {
	return ab.target > 0 && !row.read && row.clients == 64
}

// writeVerdict judges the target row, each part of the target shown.
func (ab *adapterBench) writeVerdict(b *strings.Builder, row adapterRow, i int) {
	a, r := ab.armada[i], ab.reference[i]
	errs := 0 // Armada's, over every round
	for _, round := range ab.armRounds {
		if i < len(round) {
			errs += round[i].errors
		}
	}
	ratio := ab.ratios(i, rateOf)
	rateOK := ratio >= ab.target
	fmt.Fprintf(b, "\nTarget, %d-client %s: Armada's ops/s ≥ %.0f× %s's — %s (the median of the rounds' ratios; "+
		"median rounds %s vs %s): %s", row.clients, ab.op(row), ab.target, ab.refName, fmtX(ratio),
		fmtRate(a.rate()), fmtRate(r.rate()), judge(rateOK, ""))
	pass := rateOK && errs == 0
	if ab.p99NoWorse {
		p99 := ab.ratios(i, p99Of)
		p99OK := p99 > 0 && p99 <= 1
		fmt.Fprintf(b, "; and Armada's p99 ≤ %s's — %s (the median of the rounds' ratios): %s", ab.refName, fmtX(p99), judge(p99OK, ""))
		pass = pass && p99OK
	}
	if errs > 0 {
		fmt.Fprintf(b, "; but Armada had %d errors over the rounds", errs)
	}
	fmt.Fprintf(b, ". Overall: %s.\n", judge(pass, ""))
}

func rateOf(l loadResult) float64 { return l.rate() }
func p99Of(l loadResult) float64  { return float64(l.p99) }

// ratios is the median over the rounds of Armada's figure over the
// reference's for row i, each round's pair measured minutes apart at
// most (0 when there is none): the machine's drift between rounds cancels
// out of each round's ratio.
func (ab *adapterBench) ratios(i int, figure func(loadResult) float64) float64 {
	var rs []float64
	for r := range min(len(ab.armRounds), len(ab.refRounds)) {
		if i >= len(ab.armRounds[r]) || i >= len(ab.refRounds[r]) {
			continue
		}
		if ref := figure(ab.refRounds[r][i]); ref > 0 {
			rs = append(rs, figure(ab.armRounds[r][i])/ref)
		}
	}
	if len(rs) == 0 {
		return 0
	}
	slices.Sort(rs)
	return rs[(len(rs)-1)/2]
}

func fmtX(x float64) string {
	if x == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", x)
}

// rateRatio is a's ops/s over r's.
func rateRatio(a, r loadResult) string {
	if r.rate() == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", a.rate()/r.rate())
}
