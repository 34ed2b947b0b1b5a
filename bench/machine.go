package main

import (
	"bufio"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// machine describes where the benchmark ran.
type machine struct {
	nproc         int
	cpu           string
	memory        string
	kernel        string
	goVersion     string // the toolchain running the benchmark
	armadaGo      string // the toolchain that built the armada binary
	armadaVersion string
	git           string
}

func readMachine(armadaBin string) machine {
	m := machine{
		nproc:         runtime.NumCPU(),
		cpu:           procField("/proc/cpuinfo", "model name"),
		memory:        memTotal(),
		kernel:        command("uname", "-r"),
		goVersion:     runtime.Version(),
		armadaVersion: command(armadaBin, "--version"),
		git:           command("git", "describe", "--always", "--dirty"),
	}
	if bi, err := buildinfo.ReadFile(armadaBin); err == nil {
		m.armadaGo = bi.GoVersion
	}
	return m
}

// command is the trimmed output of a command, or "unknown".
func command(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if s := strings.TrimSpace(string(out)); err == nil && s != "" {
		return s
	}
	return "unknown"
}

// procField is the value of the first "key : value" line for key in a
// /proc file, or "unknown".
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// memTotal is MemTotal from /proc/meminfo in GiB.
func memTotal() string {
	f := strings.Fields(procField("/proc/meminfo", "MemTotal"))
	if len(f) == 0 {
		return "unknown"
	}
	kb, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}
