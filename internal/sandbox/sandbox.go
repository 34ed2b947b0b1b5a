// Package sandbox boots a real systemd as PID 1 of a new PID and mount
// namespace, for tests of the systemd driver on machines where systemd is
// not the init system (see TESTING.md in the project's shared notes):
//
//	unshare --pid --fork --mount --mount-proc --propagation private sh -c BOOT
//
// BOOT mounts tmpfs on /run, /tmp and /var/tmp (without them systemd's
// boot-time clean-up empties the host's /tmp), writes empty targets into a
// private unit directory, points SYSTEMD_UNIT_PATH at it and
// /run/systemd/system (so none of the distribution's units load) and execs
// systemd. Each sandbox gets cgroups of its own below the caller's, so two
// sandboxes never share a unit's cgroup. The network namespace is the
// host's. Processes run inside through nsenter; a sandbox ends with SIGKILL
// to its PID 1, which takes everything in it along.
package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// bootScript runs as PID 1 of the new namespaces; $1 is the sandbox's
// cgroup path.
const bootScript = `set -e
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /var/tmp
mkdir -p /run/units /run/systemd/system
for t in default sysinit basic sockets timers paths local-fs remote-fs network network-online multi-user slices shutdown; do
  printf '[Unit]\nDefaultDependencies=no\n' > /run/units/$t.target
done
printf '[Unit]\nDefaultDependencies=no\n' > /run/units/-.slice
printf '[Unit]\nDefaultDependencies=no\n' > /run/units/system.slice
CG="$1"
# systemd roots its tree at its own cgroup and uses a v1 controller only if
# that path exists in the controller's hierarchy.
for d in /sys/fs/cgroup/*/; do mkdir -p "$d${CG#/}" 2>/dev/null || true; done
for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
  if [ -f "$h$CG/cgroup.procs" ]; then echo 0 > "$h$CG/cgroup.procs"; fi
done
export SYSTEMD_UNIT_PATH=/run/units:/run/systemd/system:/etc/systemd/system
exec /lib/systemd/systemd --system --unit=default.target
`

// Sandbox is one booted systemd.
type Sandbox struct {
	// PID is systemd's PID as the host sees it.
	PID int

	cmd    *exec.Cmd
	out    *bytes.Buffer
	cgroup string // the sandbox's cgroup path, relative to each hierarchy
	closed atomic.Bool
}

var seq atomic.Int64

// Boot starts a sandbox and waits until `systemctl is-system-running`
// answers running. Close ends it.
func Boot(ctx context.Context) (*Sandbox, error) {
	for _, bin := range []string{"unshare", "nsenter", "/lib/systemd/systemd"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("sandbox: needs root (unshare, cgroups)")
	}
	cg := filepath.Join(ownCgroup(), fmt.Sprintf("armada-sandbox-%d-%d", os.Getpid(), seq.Add(1)))
	s := &Sandbox{out: &bytes.Buffer{}, cgroup: cg}
	s.cmd = exec.Command("unshare", "--pid", "--fork", "--mount", "--mount-proc", "--propagation", "private",
		"sh", "-c", bootScript, "boot", cg)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	s.cmd.Dir = "/"
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("sandbox: start unshare: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(exited) }()
	fail := func(err error) (*Sandbox, error) {
		s.kill()
		<-exited
		s.removeCgroups()
		return nil, fmt.Errorf("sandbox: %w (output: %q)", err, s.out.String())
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.PID == 0 {
		select {
		case <-exited:
			return fail(errors.New("unshare exited during boot"))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
		s.PID = childOf(s.cmd.Process.Pid)
		if time.Now().After(deadline) {
			return fail(errors.New("no PID 1 in the namespace after 30s"))
		}
	}
	var last string
	for {
		out, _ := s.Command(ctx, "systemctl", "is-system-running").Output()
		last = strings.TrimSpace(string(out))
		if last == "running" {
			break
		}
		if last == "degraded" {
			return fail(errors.New("systemd booted degraded"))
		}
		select {
		case <-exited:
			return fail(errors.New("systemd exited during boot"))
		case <-ctx.Done():
			return fail(fmt.Errorf("is-system-running answers %q: %w", last, ctx.Err()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("is-system-running answers %q after 30s", last))
		}
	}
	go func() { <-exited; s.closed.Store(true) }()
	return s, nil
}

// Start boots a sandbox for a test and ends it when the test ends. A
// sandbox that cannot boot fails the test: there is no skipping.
func Start(t testing.TB) *Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Boot(ctx)
	if err != nil {
		t.Fatalf("boot systemd sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("end sandbox: %v", err)
		}
	})
	return s
}

// Command is name run inside the sandbox (nsenter -t PID -m -p).
func (s *Sandbox) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	a := append([]string{"-t", strconv.Itoa(s.PID), "-m", "-p", "--", name}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", a...)
	cmd.Dir = "/"
	return cmd
}

// Run runs a command inside the sandbox and returns its standard output,
// trimmed; the error carries its standard error.
func (s *Sandbox) Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := s.Command(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return strings.TrimSpace(string(out)), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// Show returns one property of a unit as `systemctl show -p P --value`
// prints it.
func (s *Sandbox) Show(ctx context.Context, unit, prop string) (string, error) {
	return s.Run(ctx, "systemctl", "show", "-p", prop, "--value", unit)
}

// Output is what systemd and the boot script printed.
func (s *Sandbox) Output() string { return s.out.String() }

func (s *Sandbox) kill() {
	if s.PID > 0 {
		_ = syscall.Kill(s.PID, syscall.SIGKILL)
	}
	_ = s.cmd.Process.Kill()
}

// Close kills the sandbox's PID 1 (and so everything in it), waits for it
// and removes its cgroups.
func (s *Sandbox) Close() error {
	s.kill()
	deadline := time.Now().Add(10 * time.Second)
	for !s.closed.Load() {
		if time.Now().After(deadline) {
			return fmt.Errorf("sandbox %d still runs 10s after SIGKILL", s.PID)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		if s.removeCgroups() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("cgroups of sandbox %d are still busy", s.PID)
}

// removeCgroups removes the sandbox's cgroup trees, deepest first, and
// reports whether none is left.
func (s *Sandbox) removeCgroups() bool {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*" + s.cgroup)
	if _, err := os.Stat("/sys/fs/cgroup" + s.cgroup + "/cgroup.procs"); err == nil {
		roots = append(roots, "/sys/fs/cgroup"+s.cgroup)
	}
	clean := true
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				clean = false
			}
		}
	}
	return clean
}

// childOf returns the first child of pid, 0 if none yet.
func childOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// ownCgroup is this process's cgroup: its memory controller's path on a
// v1 or hybrid host (so the sandbox stays inside whatever limits it), the
// unified one otherwise.
func ownCgroup() string {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "/"
	}
	defer f.Close()
	unified := "/"
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[1] == "memory":
			return parts[2]
		case parts[0] == "0" && parts[1] == "":
			unified = parts[2]
		}
	}
	return unified
}

// KillInner sends SIGKILL to the process a Command started inside the
// sandbox. nsenter forks to enter the PID namespace, so killing the
// nsenter process alone would leave that process running; once it is
// killed, nsenter exits the same way.
func KillInner(cmd *exec.Cmd) {
	if pid := InnerPID(cmd); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// InnerPID is the host PID of the process a Command started inside the
// sandbox (nsenter's child), 0 if there is none (yet).
func InnerPID(cmd *exec.Cmd) int {
	if cmd.Process == nil {
		return 0
	}
	return childOf(cmd.Process.Pid)
}

// Dir makes a directory for a test that a sandbox sees as the host does:
// not under /tmp or /var/tmp, which are private inside. It is removed when
// the test ends.
func Dir(t testing.TB) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		base = "/var/cache"
	}
	base = filepath.Join(base, "armada-sandbox")
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatalf("sandbox dir: %v", err)
	}
	dir, err := os.MkdirTemp(base, "t-")
	if err != nil {
		t.Fatalf("sandbox dir: %v", err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove sandbox dir: %v", err)
		}
	})
	return dir
}

// CopyFile copies an executable into dir and returns its path there.
func CopyFile(t testing.TB, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}
