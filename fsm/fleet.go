package fsm

import (
	"fmt"
	"strings"
	"time"
)

// FleetVersion is one weighted revision of a fleet: a blueprint version and
// its share of the replicas.
type FleetVersion struct {
	Blueprint string `json:"blueprint"`
	Version   int    `json:"version,omitempty"` // 0 on input: the latest when applied
	Weight    int    `json:"weight,omitempty"`
}

// Constraint restricts placement to nodes whose label matches.
type Constraint struct {
	Label string `json:"label"`
	Op    string `json:"op"`              // =, !=, in, not_in, exists, not_exists
	Value string `json:"value,omitempty"` // comma-separated for in and not_in
}

// Placement says how a fleet's ships are spread over nodes.
type Placement struct {
	Strategy    string       `json:"strategy,omitempty"` // spread (default) or pack
	Constraints []Constraint `json:"constraints,omitempty"`
}

// Buffer keeps Ready unallocated ready ships, within [Min, Max] replicas.
type Buffer struct {
	Ready int `json:"ready"`
	Min   int `json:"min"`
	Max   int `json:"max"`
}

// Update says how version changes roll out.
type Update struct {
	MaxParallel  int  `json:"max_parallel,omitempty"`
	DrainLB      bool `json:"drain_lb,omitempty"`
	AutoRollback bool `json:"auto_rollback,omitempty"`
	// Deadline fails a deployment that has had no new ship up for this
	// long (default 1m).
	Deadline Duration `json:"deadline,omitempty"`
}

// Fleet is a set of ships kept at Replicas, split over weighted versions.
type Fleet struct {
	Name      string         `json:"name"`
	Replicas  int            `json:"replicas"`
	Versions  []FleetVersion `json:"versions"`
	Placement *Placement     `json:"placement,omitempty"`
	Buffer    *Buffer        `json:"buffer,omitempty"`
	Update    *Update        `json:"update,omitempty"`
	// Generation counts the changes to the fleet's spec.
	Generation uint64 `json:"generation,omitempty"`
	Created    int64  `json:"created,omitempty"`
	Updated    int64  `json:"updated,omitempty"`
}

// FleetStatus counts a fleet's ships. Desired is the fleet's replicas;
// Total counts the ships that have not ended (stopping ones included); the
// per-state counts cover every ship the state still holds, ended ones too.
type FleetStatus struct {
	Desired   int `json:"desired"`
	Total     int `json:"total"`
	Queued    int `json:"queued"`
	Scheduled int `json:"scheduled"`
	Starting  int `json:"starting"`
	Ready     int `json:"ready"`
	Allocated int `json:"allocated"`
	Reserved  int `json:"reserved"`
	Stopping  int `json:"stopping"`
	Stopped   int `json:"stopped"`
	Failed    int `json:"failed"`
	Lost      int `json:"lost"`
	// Versions has one entry per version of the spec, in its order, then
	// one per other version that still has ships that have not ended
	// (desired 0: being replaced).
	Versions []VersionStatus `json:"versions"`
}

// VersionStatus is one blueprint version of a fleet. Ships counts the
// version's ships that count towards the fleet, as the fleet's controller
// sees them: wanted running, not ended, not stopping and not on a draining
// node. Ready counts those of them that are ready or allocated.
type VersionStatus struct {
	Blueprint string `json:"blueprint"`
	Version   int    `json:"version"`
	Weight    int    `json:"weight"`
	Desired   int    `json:"desired"`
	Ships     int    `json:"ships"`
	Ready     int    `json:"ready"`
}

// Strategies.
const (
	StrategySpread = "spread"
	StrategyPack   = "pack"
)

// Limits on fleets.
const (
	MaxReplicas    = 100_000
	MaxVersions    = 16
	MaxConstraints = 32
)

// ParseFleet reads a fleet from YAML or JSON, refusing unknown fields.
func ParseFleet(data []byte) (*Fleet, error) {
	var f Fleet
	if err := StrictUnmarshal(data, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// ValidateFleet checks a fleet's own fields and fills in defaults. Whether
// its blueprints exist is checked when it is applied.
func ValidateFleet(f *Fleet) *Error {
	if !ValidName(f.Name) {
		return errf(ErrInvalid, "name", "must be 1..63 of [a-z0-9-], starting and ending with a letter or digit")
	}
	if f.Replicas < 0 || f.Replicas > MaxReplicas {
		return errf(ErrInvalid, "replicas", "must be 0..%d", MaxReplicas)
	}
	if len(f.Versions) == 0 {
		return errf(ErrInvalid, "versions", "at least one version is required")
	}
	if len(f.Versions) > MaxVersions {
		return errf(ErrInvalid, "versions", "at most %d versions", MaxVersions)
	}
	sum := 0
	for i, v := range f.Versions {
		field := fmt.Sprintf("versions[%d]", i)
		if !ValidName(v.Blueprint) {
			return errf(ErrInvalid, field+".blueprint", "must name a blueprint")
		}
		if v.Version < 0 {
			return errf(ErrInvalid, field+".version", "must be positive (or omitted for the latest)")
		}
		if v.Weight < 0 || v.Weight > 1_000_000 {
			return errf(ErrInvalid, field+".weight", "must be 0..1000000")
		}
		sum += v.Weight
	}
	if sum == 0 {
		if len(f.Versions) > 1 {
			return errf(ErrInvalid, "versions", "weights must add up to more than 0")
		}
		f.Versions[0].Weight = 1
	}
	if p := f.Placement; p != nil {
		switch p.Strategy {
		case "":
			p.Strategy = StrategySpread
		case StrategySpread, StrategyPack:
		default:
			return errf(ErrInvalid, "placement.strategy", "must be spread or pack, not %q", p.Strategy)
		}
		if len(p.Constraints) > MaxConstraints {
			return errf(ErrInvalid, "placement.constraints", "at most %d constraints", MaxConstraints)
		}
		for i, c := range p.Constraints {
			field := fmt.Sprintf("placement.constraints[%d]", i)
			if !labelKeyRe.MatchString(c.Label) {
				return errf(ErrInvalid, field+".label", "must be a label key")
			}
			switch c.Op {
			case "=", "==", "!=", "in", "not_in":
				for _, v := range strings.Split(c.Value, ",") {
					if !labelValRe.MatchString(v) {
						return errf(ErrInvalid, field+".value", "must be a label value (comma-separated for in and not_in)")
					}
				}
			case "exists", "not_exists":
				if c.Value != "" {
					return errf(ErrInvalid, field+".value", "must be empty for %s", c.Op)
				}
			default:
				return errf(ErrInvalid, field+".op", "must be one of =, !=, in, not_in, exists, not_exists, not %q", c.Op)
			}
		}
	}
	if b := f.Buffer; b != nil {
		if b.Min < 0 || b.Max > MaxReplicas || b.Min > b.Max {
			return errf(ErrInvalid, "buffer.max", "needs 0 <= min <= max <= %d", MaxReplicas)
		}
		if b.Ready < 0 || b.Ready > b.Max {
			return errf(ErrInvalid, "buffer.ready", "must be 0..max")
		}
	}
	if u := f.Update; u != nil && (u.MaxParallel < 0 || u.MaxParallel > MaxReplicas) {
		return errf(ErrInvalid, "update.max_parallel", "must be 0..%d", MaxReplicas)
	}
	if u := f.Update; u != nil && u.Deadline != 0 && (u.Deadline < Duration(time.Second) || u.Deadline > Duration(24*time.Hour)) {
		return errf(ErrInvalid, "update.deadline", "must be between 1s and 24h")
	}
	return nil
}

// Strategy is the fleet's placement strategy.
func (f *Fleet) Strategy() string {
	if f.Placement == nil || f.Placement.Strategy == "" {
		return StrategySpread
	}
	return f.Placement.Strategy
}

// Split divides replicas over weights by largest remainder: every count is
// the floor of its exact share, and the replicas left over go to the
// largest fractional parts (earlier versions first on ties). The counts
// always add up to replicas.
func Split(replicas int, weights []int) []int {
	out := make([]int, len(weights))
	total := 0
	for _, w := range weights {
		total += w
	}
	if total == 0 || replicas == 0 {
		return out
	}
	left := replicas
	rem := make([]int, len(weights))
	for i, w := range weights {
		out[i] = replicas * w / total
		rem[i] = replicas * w % total
		left -= out[i]
	}
	for ; left > 0; left-- {
		best := -1
		for i := range rem {
			if rem[i] >= 0 && (best < 0 || rem[i] > rem[best]) {
				best = i
			}
		}
		out[best]++
		rem[best] = -1
	}
	return out
}

// Desired is how many ships the fleet wants of each version, in the order
// of Versions.
func (f *Fleet) Desired() []int { return f.DesiredAfter(0) }

// Runs reports whether the fleet still runs a blueprint version: it is
// in its versions with a weight.
func (f *Fleet) Runs(blueprint string, version int) bool {
	for _, v := range f.Versions {
		if v.Blueprint == blueprint && v.Version == version {
			return v.Weight > 0
		}
	}
	return false
}

// DesiredAfter is Desired once retired ships are taken off the replicas:
// occupied (allocated or reserved) ships of versions the fleet no longer
// runs, which stay until their players are done. They count towards the
// replicas, as they would have in their own version, so a rolling update
// under allocations does not grow the fleet.
func (f *Fleet) DesiredAfter(retired int) []int {
	w := make([]int, len(f.Versions))
	for i, v := range f.Versions {
		w[i] = v.Weight
	}
	return Split(max(f.Replicas-retired, 0), w)
}

// DesiredOf is how many ships of one blueprint version the fleet wants,
// with retired ships as in DesiredAfter.
func (f *Fleet) DesiredOf(blueprint string, version, retired int) int {
	for i, n := range f.DesiredAfter(retired) {
		if v := f.Versions[i]; v.Blueprint == blueprint && v.Version == version {
			return n
		}
	}
	return 0
}

// Match reports whether a node's labels satisfy a selector (every key
// equal) and constraints.
func Match(labels, selector map[string]string, cons []Constraint) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, c := range cons {
		got, ok := labels[c.Label]
		switch c.Op {
		case "=", "==":
			if !ok || got != c.Value {
				return false
			}
		case "!=":
			if ok && got == c.Value {
				return false
			}
		case "in":
			if !ok || !inList(got, c.Value) {
				return false
			}
		case "not_in":
			if ok && inList(got, c.Value) {
				return false
			}
		case "exists":
			if !ok {
				return false
			}
		case "not_exists":
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func inList(v, list string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == v {
			return true
		}
	}
	return false
}
