// Package worker turns the ships placed on a node into running processes:
// a reconciler (Worker) compares the ships the replicated state places here
// with what the driver runs, and the resource advisor reports the node's
// capacity and the host ports in use.
package worker

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

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

func memTotal(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read memory info: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse MemTotal: %w", err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("no MemTotal in %s", path)
}
