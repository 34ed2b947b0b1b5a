package cluster

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/armada-orchestrator/armada/fsm"
)

// metrics exposes Raft, gossip and apply figures to Prometheus. Raft and
// gossip gauges are read at scrape time; nothing is global.
type metrics struct {
	n         *Node
	applyDur  *prometheus.HistogramVec
	applyErr  *prometheus.CounterVec
	forwarded prometheus.Counter

	raftState, raftTerm, raftLast, raftCommit, raftApplied, fsmIndex    *prometheus.Desc
	raftContact, raftVoters, raftNonvoters, gossipMembers, gossipHealth *prometheus.Desc
}

func newMetrics(n *Node) *metrics {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &metrics{
		n: n,
		applyDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "armada_apply_duration_seconds",
			Help:    "Time from submitting a command on this node to its result, by command type.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"type"}),
		applyErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "armada_apply_errors_total",
			Help: "Commands submitted on this node that failed, by command type.",
		}, []string{"type"}),
		forwarded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "armada_apply_forwarded_total",
			Help: "Commands this node applied as leader on behalf of a follower.",
		}),
		raftState:     d("armada_raft_state", "Raft state of this node: 0 follower, 1 candidate, 2 leader, 3 shutdown."),
		raftTerm:      d("armada_raft_term", "Current Raft term."),
		raftLast:      d("armada_raft_last_index", "Index of the last Raft log entry."),
		raftCommit:    d("armada_raft_commit_index", "Raft commit index."),
		raftApplied:   d("armada_raft_applied_index", "Last Raft index handed to the state machine."),
		fsmIndex:      d("armada_fsm_index", "Index of the last entry applied to the replicated state."),
		raftContact:   d("armada_raft_last_contact_seconds", "Seconds since this follower last heard from the leader (0 on the leader)."),
		raftVoters:    d("armada_raft_voters", "Voters in the Raft configuration."),
		raftNonvoters: d("armada_raft_nonvoters", "Non-voters in the Raft configuration."),
		gossipMembers: d("armada_gossip_members", "Gossip members known to this node, by status.", "status"),
		gossipHealth:  d("armada_gossip_health_score", "Memberlist's awareness health score (0 is healthy)."),
	}
}

func (m *metrics) observeApply(t fsm.CmdType, d time.Duration, err error) {
	label := strconv.Itoa(int(t))
	m.applyDur.WithLabelValues(label).Observe(d.Seconds())
	if err != nil {
		m.applyErr.WithLabelValues(label).Inc()
	}
}

// Collector returns the node's Prometheus collector.
func (n *Node) Collector() prometheus.Collector { return n.met }

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.applyDur.Describe(ch)
	m.applyErr.Describe(ch)
	m.forwarded.Describe(ch)
	for _, d := range []*prometheus.Desc{m.raftState, m.raftTerm, m.raftLast, m.raftCommit, m.raftApplied, m.fsmIndex,
		m.raftContact, m.raftVoters, m.raftNonvoters, m.gossipMembers, m.gossipHealth} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.applyDur.Collect(ch)
	m.applyErr.Collect(ch)
	m.forwarded.Collect(ch)
	r := m.n.raft
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	g(m.raftState, float64(r.State()))
	g(m.raftTerm, float64(r.CurrentTerm()))
	g(m.raftLast, float64(r.LastIndex()))
	g(m.raftCommit, float64(r.CommitIndex()))
	g(m.raftApplied, float64(r.AppliedIndex()))
	g(m.fsmIndex, float64(m.n.state.Index()))
	contact := 0.0
	if r.State() != raft.Leader {
		if lc := r.LastContact(); !lc.IsZero() {
			contact = time.Since(lc).Seconds()
		}
	}
	g(m.raftContact, contact)
	voters, nonvoters := 0, 0
	if f := r.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			} else {
				nonvoters++
			}
		}
	}
	g(m.raftVoters, float64(voters))
	g(m.raftNonvoters, float64(nonvoters))
	for status, c := range m.n.gsp.counts() {
		g(m.gossipMembers, float64(c), status)
	}
	g(m.gossipHealth, float64(m.n.gsp.ml.GetHealthScore()))
}
