package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// errExited means a process the benchmark needs has stopped.
var errExited = errors.New("process exited unexpectedly (see its log tail)")

// proc is one child process (an Armada node or an etcd member) whose
// output goes to a log file.
type proc struct {
	name    string
	bin     string
	args    []string
	logPath string

	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
}

// startProc starts bin with args, appending its output to logPath. The
// child gets its own process group (so a terminal Ctrl-C reaches only the
// driver, which then stops it in order) and is killed by the kernel if
// the driver dies without cleaning up.
func startProc(name, bin string, args []string, logPath string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log for %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, bin: bin, args: args, logPath: logPath, cmd: cmd, log: f, exited: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(p.exited)
	}()
	return p, nil
}

// restart starts the same command again, once this one has exited.
func (p *proc) restart() (*proc, error) {
	<-p.exited
	return startProc(p.name, p.bin, p.args, p.logPath)
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the process to be reaped.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop asks the process to exit with SIGTERM and kills it if it is still
// there after grace.
func (p *proc) stop(grace time.Duration) {
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.kill()
	}
}

// logTail is the end of the process's log, for error reports.
func (p *proc) logTail(lines int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// portsFrom and portsTo bound the ports freePorts picks from.
const portsFrom, portsTo = 10000, 20000

// freePorts returns n distinct loopback ports that are free for both TCP
// and UDP right now (gossip needs both on the same port).
func freePorts(n int) ([]int, error) {
	var ports []int
	var holds []func()
	defer func() {
		for _, release := range holds {
			release()
		}
	}()
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 100*n {
			return nil, errors.New("no free loopback ports")
		}
		// Below the kernel's ephemeral range (32768 and up here), so that
		// no client connection takes the port between now and the
		// server's bind; below the ships' default ports (20000-29999) too.
		port := portsFrom + rand.IntN(portsTo-portsFrom)
		tl, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ul, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			tl.Close()
			continue
		}
		holds = append(holds, func() { tl.Close(); ul.Close() })
		ports = append(ports, port)
	}
	return ports, nil
}

// loopback is 127.0.0.1:port.
func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// rss is a process's resident memory, in bytes: VmRSS and its anonymous
// and file-backed parts from /proc/<pid>/status, and from
// /proc/<pid>/smaps the file-backed pages of the executable and of the
// memory-mapped BoltDB files.
type rss struct {
	total, anon, file int64
	exe, db           int64
}

func readRSS(pid int, exe string) (rss, error) {
	var r rss
	fields := map[string]*int64{"VmRSS:": &r.total, "RssAnon:": &r.anon, "RssFile:": &r.file}
	err := scanProc(pid, "status", func(f []string) error {
		if p := fields[f[0]]; p != nil && len(f) >= 2 {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			*p = kb * 1024
			return err
		}
		return nil
	})
	if err != nil {
		return rss{}, err
	}
	if r.total == 0 {
		return rss{}, fmt.Errorf("pid %d: no VmRSS in /proc status", pid)
	}
	var mapping string
	err = scanProc(pid, "smaps", func(f []string) error {
		switch {
		case strings.Contains(f[0], "-") && len(f) >= 5: // a mapping's header line
			mapping = ""
			if len(f) >= 6 {
				mapping = f[5]
			}
		case f[0] == "Rss:" && len(f) >= 2:
			kb, err := strconv.ParseInt(f[1], 10, 64)
			switch {
			case mapping == exe:
				r.exe += kb * 1024
			case strings.HasSuffix(mapping, ".db") || filepath.Base(mapping) == "db": // Armada's *.db, etcd's member/snap/db
				r.db += kb * 1024
			}
			return err
		}
		return nil
	})
	return r, err
}

// scanProc calls fn with the fields of each non-empty line of
// /proc/<pid>/<file>, or of /proc/<file> when pid is 0.
func scanProc(pid int, file string, fn func(fields []string) error) error {
	path := filepath.Join("/proc", file)
	if pid != 0 {
		path = filepath.Join("/proc", strconv.Itoa(pid), file)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s of pid %d: %w", file, pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if err := fn(f); err != nil {
			return fmt.Errorf("pid %d %s: %w", pid, file, err)
		}
	}
	return sc.Err()
}

// sleepCtx waits for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// clockTicks is USER_HZ, the unit of the CPU times in /proc/<pid>/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// cpuTime is the user+system CPU a process has used so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: count from after it.
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("pid %d: short /proc stat", pid)
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime: fields 14 and 15
		t, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pid %d: bad CPU time %q: %w", pid, s, err)
		}
		ticks += t
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// machineCPUTime is the busy CPU time of the whole machine so far, from
// the first line of /proc/stat (user, nice, system, irq, softirq, steal;
// guest time is already inside user).
func machineCPUTime() (time.Duration, error) {
	var ticks int64
	err := scanProc(0, "stat", func(f []string) error {
		if f[0] != "cpu" || len(f) < 9 {
			return nil
		}
		for _, i := range []int{1, 2, 3, 6, 7, 8} {
			t, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				return err
			}
			ticks += t
		}
		return nil
	})
	return time.Duration(ticks) * time.Second / clockTicks, err
}
