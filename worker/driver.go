package worker

import (
	"context"
)

// Spec is everything a driver needs to run one ship.
type Spec struct {
	ID    string
	Fleet string
	// Unit is the blueprint's systemd unit text.
	Unit string
	// Env is the ship's whole environment: ARMADA_* variables, the
	// blueprint's env and its decrypted secrets.
	Env map[string]string
	// CPUMHz and MemoryMB are the ship's resources; a driver that can
	// enforce them (systemd: CPUQuota=, MemoryMax=) does. 0: no limit.
	CPUMHz, MemoryMB int64
}

// Driver process states.
const (
	// ProcRunning: the ship's main process is up.
	ProcRunning = "running"
	// ProcStarting: the ship is being started or waits to be restarted.
	ProcStarting = "starting"
	// ProcExited: the ship ended and will not be restarted; Failed and
	// Reason say how.
	ProcExited = "exited"
)

// Status is what a driver knows of one ship.
type Status struct {
	ID       string
	State    string // ProcRunning, ProcStarting or ProcExited
	Pid      int
	Restarts int
	// Failed is set for an exited ship that ended badly (non-zero exit,
	// signal, or too many restarts); Reason says how in words.
	Failed bool
	Reason string
}

// Driver runs ships on this host. Implementations are safe for concurrent
// use.
type Driver interface {
	// Name is the driver's name as in --driver.
	Name() string
	// Start makes the ship run. A ship that is already running or
	// restarting is left alone; an exited one is started afresh.
	Start(ctx context.Context, s *Spec) error
	// Stop stops the ship and returns once its processes are gone: SIGTERM,
	// then SIGKILL after the unit's TimeoutStopSec. Stopping an unknown ship
	// is not an error. The ship is forgotten afterwards.
	Stop(ctx context.Context, id string) error
	// List reports every ship the driver runs, and exited ones not yet
	// forgotten.
	List() []Status
	// Forget drops an exited ship's status once it has been reported.
	Forget(id string)
	// Changed receives a value (non-blocking, buffered 1) whenever a ship's
	// status changes, so the reconciler need not poll.
	Changed() <-chan struct{}
	// LogPath is the file that holds the ship's captured stdout and stderr.
	LogPath(id string) string
	// Logs lists the ships whose captured output the driver keeps.
	Logs() []string
	// RemoveLog deletes a ship's captured output, once the ship is gone
	// from the cluster. A ship the driver still runs keeps its log.
	RemoveLog(id string) error
	// Close stops every ship and releases the driver.
	Close() error
}

// Usage is what one ship uses, read from its cgroup.
type Usage struct {
	// CPUNanos is the CPU time the ship has used since it started.
	CPUNanos uint64
	// MemoryBytes is the memory it uses now.
	MemoryBytes uint64
}

// Meter is a driver that can measure its ships (systemd: the units'
// CPUUsageNSec and MemoryCurrent). It is optional.
type Meter interface {
	// Usage reports the running ships' usage, by ship id.
	Usage(ctx context.Context) (map[string]Usage, error)
}
