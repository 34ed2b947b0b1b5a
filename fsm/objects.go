package fsm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// Node states as seen by gossip, recorded by the leader.
const (
	NodeAlive   = "alive"
	NodeSuspect = "suspect"
	NodeDead    = "dead"
	NodeLeft    = "left"
)

// Node roles.
const (
	RoleVoter    = "voter"
	RoleNonvoter = "nonvoter"
	RoleWorker   = "worker"
)

// Resources is an amount of CPU and memory.
type Resources struct {
	CPUMHz   int64 `json:"cpu_mhz"`
	MemoryMB int64 `json:"memory_mb"`
}

// Node is one member of the cluster as recorded in the replicated state.
type Node struct {
	Name       string            `json:"name"`
	Address    string            `json:"address"`
	GossipAddr string            `json:"gossip_addr"`
	RaftAddr   string            `json:"raft_addr,omitempty"`
	HTTPAddr   string            `json:"http_addr"`
	Role       string            `json:"role"`
	Server     bool              `json:"server"`
	Worker     bool              `json:"worker"`
	Status     string            `json:"status"`
	Drain      bool              `json:"drain"`
	Labels     map[string]string `json:"labels"`
	Capacity   Resources         `json:"capacity"`
	Allocated  Resources         `json:"allocated"`
	Ships      int               `json:"ships"`
	Version    string            `json:"version,omitempty"`
	// PortsRange is the range ship host ports come from ("20000-29999"),
	// HostPorts the ports in it that something else on the host uses, and
	// UsedPorts the ones its ships hold. The worker reports the first two.
	PortsRange string `json:"ports_range,omitempty"`
	HostPorts  []int  `json:"host_ports,omitempty"`
	UsedPorts  []int  `json:"used_ports,omitempty"`
	// StatusSince is when the leader saw Status change, in Unix milliseconds.
	StatusSince int64 `json:"status_since"`
	// DownSince is when the node stopped being alive (suspect, then dead
	// or left, count as one outage), in Unix milliseconds; 0 while alive.
	DownSince int64 `json:"down_since,omitempty"`
	Updated   int64 `json:"updated"`
	// Usage is what the node uses, as its worker last reported.
	Usage *Usage `json:"usage,omitempty"`
}

// Port is a named host port a ship needs.
type Port struct {
	Name     string `json:"name"`
	Protocol string `json:"protocol,omitempty"`
}

// Health is how the worker decides a ship is ready.
type Health struct {
	Type     string   `json:"type"`
	Port     string   `json:"port,omitempty"`
	Path     string   `json:"path,omitempty"`
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
	Failures int      `json:"failures,omitempty"`
}

// Blueprint is a ship blueprint as users write it. Secrets are accepted on
// input and never returned: reads carry SecretNames instead.
type Blueprint struct {
	Name         string            `json:"name"`
	Version      int               `json:"version,omitempty"`
	Unit         string            `json:"unit"`
	Resources    Resources         `json:"resources"`
	Ports        []Port            `json:"ports,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	Secrets      map[string]string `json:"secrets,omitempty"`
	SecretNames  []string          `json:"secret_names,omitempty"`
	Health       *Health           `json:"health,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	NodeSelector map[string]string `json:"node_selector,omitempty"`
	Created      int64             `json:"created,omitempty"`
}

// BlueprintInfo summarises a blueprint and its history.
type BlueprintInfo struct {
	Name     string `json:"name"`
	Latest   int    `json:"latest"`
	Versions []int  `json:"versions"`
	Created  int64  `json:"created"`
	Updated  int64  `json:"updated"`
}

// storedBlueprint is one version as kept in the state: the spec without
// plaintext secrets, the sealed secrets, and a keyed hash of them so that an
// unchanged re-apply does not create a new version.
type storedBlueprint struct {
	Spec        Blueprint `json:"spec"`
	Sealed      []byte    `json:"sealed,omitempty"`
	SecretsHash []byte    `json:"secrets_hash,omitempty"`
}

// KV is one entry of the key space. Revisions are Raft indexes.
type KV struct {
	Key       string `json:"key"`
	Value     []byte `json:"value"`
	CreateRev uint64 `json:"create_index"`
	ModRev    uint64 `json:"modify_index"`
	Version   uint64 `json:"version"`
	Lease     uint64 `json:"lease,omitempty"`
	// Type is what the value holds: a plain string (""), or a Redis hash
	// or list in the encoding described in redis.go.
	Type KVType `json:"type,omitempty"`
}

// Lease is a time-to-live that keys can be attached to. Expiry is decided
// by the leader, which applies an Expire command carrying its clock.
type Lease struct {
	ID     uint64 `json:"id"`
	TTLms  int64  `json:"ttl_ms"`
	Expiry int64  `json:"expiry"` // Unix ms
	// Key is set on the leases the Redis adapter makes for one key's TTL
	// (EX, PX, EXPIRE): such a lease ends as soon as that key leaves it.
	Key string `json:"key,omitempty"`
}

// Lock is a named lock with an owner and a time-to-live. Token increases
// with every acquisition and serves as a fencing token.
type Lock struct {
	Name     string `json:"name"`
	Owner    string `json:"owner"`
	Token    uint64 `json:"token"`
	Acquired int64  `json:"acquired"`
	Expiry   int64  `json:"expiry"`
}

// QueueItem is one entry of a FIFO queue. An item stays in the queue until
// it is acked: a claim hides it from other consumers only until ClaimExpiry.
type QueueItem struct {
	ID          uint64 `json:"id"`
	Data        []byte `json:"data"`
	Enqueued    int64  `json:"enqueued"`
	Claimer     string `json:"claimer,omitempty"`
	ClaimExpiry int64  `json:"claim_expiry,omitempty"`
	Attempts    int    `json:"attempts"`
}

// Duration is a time.Duration written as "5s" in JSON and YAML.
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "5s"-style strings, or a number of seconds.
//
// Errors are *json.UnmarshalTypeError so that encoding/json adds the path
// of the field (health.interval) to them. Numbers of seconds that do not fit
// a Duration are errors: converting them would give a platform-dependent
// value, and this runs in Apply (BlueprintPut decodes its spec).
func (d *Duration) UnmarshalJSON(b []byte) error {
	bad := &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[Duration]()}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return bad
		}
		ns := secs * float64(time.Second)
		if !(ns >= -(1<<63) && ns < 1<<63) {
			return bad
		}
		*d = Duration(ns)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return bad
	}
	*d = Duration(v)
	return nil
}

// Error is a deterministic rejection of a command: every node reaches the
// same one. Code is one of the Err* constants; Field names the input at fault.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

// Error codes.
const (
	ErrNotFound = "not_found"
	ErrConflict = "conflict"
	ErrInvalid  = "invalid"
)

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

func errf(code, field, format string, args ...any) *Error {
	return &Error{Code: code, Field: field, Message: fmt.Sprintf(format, args...)}
}
