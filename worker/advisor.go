// Package worker turns the ships placed on a node into running processes:
// a reconciler (Worker) compares the ships the replicated state places here
// with what the driver runs, and the resource advisor reports the node's
// capacity and the host ports in use.
package worker

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/armada-orchestrator/armada/fsm"
)

// Capacity reads this machine's CPU (MHz × cores) and memory from /proc.
// procDir is normally "/proc".
func Capacity(procDir string) (fsm.Resources, error) {
	mhz, cores, err := cpuInfo(procDir + "/cpuinfo")
	if err != nil {
		return fsm.Resources{}, err
	}
	memKB, err := memTotal(procDir + "/meminfo")
	if err != nil {
		return fsm.Resources{}, err
	}
	return fsm.Resources{CPUMHz: int64(mhz * float64(cores)), MemoryMB: memKB / 1024}, nil
}

// CoreMHz is one core's clock as /proc/cpuinfo tells it (1000 where it
// tells none).
func CoreMHz(procDir string) (float64, error) {
	mhz, _, err := cpuInfo(procDir + "/cpuinfo")
	return mhz, err
}

func cpuInfo(path string) (mhz float64, cores int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read cpu info: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "processor":
			cores++
		case "cpu MHz":
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f > mhz {
				mhz = f
			}
		}
	}
	if cores == 0 {
		cores = runtime.NumCPU()
	}
	if mhz == 0 {
		mhz = 1000 // some virtual CPUs report no clock: count each core as 1 GHz
	}
	return mhz, cores, sc.Err()
}

func memTotal(path string) (int64, error) { return meminfo(path, "MemTotal") }

// meminfo reads one field of /proc/meminfo, in kB.
func meminfo(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read memory info: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s: %w", field, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, path)
}

// UsageInterval is how often a worker whose driver measures its ships
// (a Meter) samples what they and the node use, and reports the figures
// that changed. Sampling reads two cgroup files per ship: every 5 s it
// was a sixth of an idle worker's CPU with 200 units.
const UsageInterval = 10 * time.Second

// usageSample is one measurement of the node and its ships.
type usageSample struct {
	at       time.Time
	ships    map[string]Usage // cumulative, from the driver
	busy     uint64           // /proc/stat jiffies: busy and total
	total    uint64
	report   *fsm.UsageReport // the rates against the sample before; nil at first
	capacity fsm.Resources
	memUsed  int64 // bytes
}

// sampleUsage measures the node (/proc) and the driver's ships, and turns
// the counters into rates against prev (nil: no rates yet).
func sampleUsage(ctx context.Context, m Meter, procDir, node string, coreMHz float64, prev *usageSample) (*usageSample, error) {
	ships, err := m.Usage(ctx)
	if err != nil {
		return nil, err
	}
	s := &usageSample{at: time.Now(), ships: ships}
	if s.busy, s.total, err = cpuTimes(procDir + "/stat"); err != nil {
		return nil, err
	}
	if s.capacity, err = Capacity(procDir); err != nil {
		return nil, err
	}
	avail, err := meminfo(procDir+"/meminfo", "MemAvailable")
	if err != nil {
		return nil, err
	}
	s.memUsed = (s.capacity.MemoryMB << 20) - avail<<10
	if prev == nil {
		return s, nil
	}
	wall := s.at.Sub(prev.at)
	if wall <= 0 {
		return s, nil
	}
	r := &fsm.UsageReport{Node: node, MemoryMB: max(s.memUsed>>20, 0)}
	if dt := s.total - prev.total; s.total > prev.total && s.busy >= prev.busy {
		r.CPUMHz = int64(float64(s.busy-prev.busy) / float64(dt) * float64(s.capacity.CPUMHz))
	}
	for _, id := range slices.Sorted(maps.Keys(ships)) {
		u := ships[id]
		su := fsm.ShipUsage{Ship: id, MemoryMB: int64(u.MemoryBytes >> 20)}
		if p, ok := prev.ships[id]; ok && u.CPUNanos >= p.CPUNanos {
			su.CPUMHz = int64(float64(u.CPUNanos-p.CPUNanos) / float64(wall.Nanoseconds()) * coreMHz)
		}
		r.Ships = append(r.Ships, su)
	}
	s.report = r
	return s, nil
}

// cpuTimes reads the busy and total jiffies of all CPUs from /proc/stat.
func cpuTimes(path string) (busy, total uint64, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, fmt.Errorf("read cpu times: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("read cpu times: no cpu line in %s", path)
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("read cpu times: %w", err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// Metrics of the resource advisor.
var (
	descCapCPU   = prometheus.NewDesc("armada_node_capacity_cpu_mhz", "This node's CPU capacity (MHz × cores, from /proc).", nil, nil)
	descCapMem   = prometheus.NewDesc("armada_node_capacity_memory_bytes", "This node's memory (from /proc).", nil, nil)
	descNodeCPU  = prometheus.NewDesc("armada_node_cpu_usage_mhz", "CPU this node uses (busy share of /proc/stat × capacity) over the last period.", nil, nil)
	descNodeMem  = prometheus.NewDesc("armada_node_memory_used_bytes", "Memory this node uses (MemTotal - MemAvailable).", nil, nil)
	descShipCPU  = prometheus.NewDesc("armada_ship_cpu_usage_mhz", "CPU a ship uses over the last period (from its cgroup).", []string{"ship"}, nil)
	descShipMem  = prometheus.NewDesc("armada_ship_memory_bytes", "Memory a ship uses (its cgroup's MemoryCurrent).", []string{"ship"}, nil)
	descShipSecs = prometheus.NewDesc("armada_ship_cpu_seconds_total", "CPU time a ship has used (its cgroup's CPUUsageNSec).", []string{"ship"}, nil)
)

// Describe implements prometheus.Collector.
func (w *Worker) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCapCPU, descCapMem, descNodeCPU, descNodeMem, descShipCPU, descShipMem, descShipSecs} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the last usage sample (only a
// worker whose driver measures takes samples) and the node's capacity.
func (w *Worker) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	s := w.usage
	w.mu.Unlock()
	if s == nil {
		if c, err := Capacity(w.cfg.ProcDir); err == nil {
			s = &usageSample{capacity: c}
		} else {
			return
		}
	}
	ch <- prometheus.MustNewConstMetric(descCapCPU, prometheus.GaugeValue, float64(s.capacity.CPUMHz))
	ch <- prometheus.MustNewConstMetric(descCapMem, prometheus.GaugeValue, float64(s.capacity.MemoryMB<<20))
	if s.at.IsZero() {
		return
	}
	ch <- prometheus.MustNewConstMetric(descNodeMem, prometheus.GaugeValue, float64(s.memUsed))
	for id, u := range s.ships {
		ch <- prometheus.MustNewConstMetric(descShipMem, prometheus.GaugeValue, float64(u.MemoryBytes), id)
		ch <- prometheus.MustNewConstMetric(descShipSecs, prometheus.CounterValue, float64(u.CPUNanos)/1e9, id)
	}
	if s.report == nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(descNodeCPU, prometheus.GaugeValue, float64(s.report.CPUMHz))
	for _, su := range s.report.Ships {
		ch <- prometheus.MustNewConstMetric(descShipCPU, prometheus.GaugeValue, float64(su.CPUMHz), su.Ship)
	}
}

// reportUsage takes a usage sample and reports its rates through Raft.
// fresh says whether the sample found ships that the one before did not
// (or is the first): their rates need a second sample.
func (w *Worker) reportUsage(ctx context.Context, m Meter) (fresh bool, err error) {
	w.mu.Lock()
	prev := w.usage
	w.mu.Unlock()
	coreMHz, err := CoreMHz(w.cfg.ProcDir)
	if err != nil {
		return false, err
	}
	s, err := sampleUsage(ctx, m, w.cfg.ProcDir, w.cfg.Node, coreMHz, prev)
	if err != nil {
		return false, err
	}
	w.mu.Lock()
	w.usage = s
	w.mu.Unlock()
	fresh = prev == nil
	for id := range s.ships {
		if fresh {
			break
		}
		_, seen := prev.ships[id]
		fresh = !seen
	}
	if s.report == nil {
		return fresh, nil
	}
	send := changedUsage(s.report, w.sent, s.capacity)
	if send == nil {
		return fresh, nil
	}
	r, err := w.ap.Apply(ctx, send)
	if err == nil && r.Err != nil {
		err = r.Err
	}
	if err != nil {
		return fresh, fmt.Errorf("report usage: %w", err)
	}
	w.sent = s.report
	return fresh, nil
}

// changedUsage is the part of report worth logging against what was last
// sent: the ships whose figures changed (or are new), with the node's
// figures; nil when no ship changed and the node moved by less than 1% of
// its capacity.
func changedUsage(report, sent *fsm.UsageReport, capacity fsm.Resources) *fsm.UsageReport {
	if sent == nil {
		return report
	}
	last := make(map[string]fsm.ShipUsage, len(sent.Ships))
	for _, su := range sent.Ships {
		last[su.Ship] = su
	}
	out := &fsm.UsageReport{Node: report.Node, CPUMHz: report.CPUMHz, MemoryMB: report.MemoryMB}
	for _, su := range report.Ships {
		if p, ok := last[su.Ship]; !ok || p != su {
			out.Ships = append(out.Ships, su)
		}
	}
	moved := func(a, b, of int64) bool { return (a-b)*100 > of || (b-a)*100 > of }
	if len(out.Ships) == 0 && !moved(report.CPUMHz, sent.CPUMHz, capacity.CPUMHz) && !moved(report.MemoryMB, sent.MemoryMB, capacity.MemoryMB) {
		return nil
	}
	return out
}
