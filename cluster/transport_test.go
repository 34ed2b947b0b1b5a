package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fakePipeline records the appends sent through it.
type fakePipeline struct {
	raft.AppendPipeline
	sent []raft.AppendEntriesRequest
	fail bool
}

func (f *fakePipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if f.fail {
		return nil, errors.New("broken pipe")
	}
	f.sent = append(f.sent, *args)
	return nil, nil
}

// Only an empty append that repeats the last one sent is dropped, and only
// for repeatAfter: entries, a new commit index, a new previous entry or a
// new term go out, and after a failed send the next append goes out
// whatever it holds.
func TestQuietPipelineDropsRepeatedEmptyAppends(t *testing.T) {
	f := &fakePipeline{}
	clock := time.Unix(1000, 0)
	p := &quietPipeline{AppendPipeline: f, now: func() time.Time { return clock }}
	empty := func(term, prev, commit uint64) *raft.AppendEntriesRequest {
		return &raft.AppendEntriesRequest{Term: term, PrevLogEntry: prev, PrevLogTerm: term, LeaderCommitIndex: commit}
	}
	steps := []struct {
		req  *raft.AppendEntriesRequest
		sent bool
	}{
		{empty(2, 10, 10), true},
		{empty(2, 10, 10), false},
		{empty(2, 10, 10), false},
		{&raft.AppendEntriesRequest{Term: 2, PrevLogEntry: 10, PrevLogTerm: 2, LeaderCommitIndex: 10, Entries: []*raft.Log{{Index: 11}}}, true},
		{empty(2, 11, 10), true},  // the new previous entry
		{empty(2, 11, 11), true},  // the new commit index
		{empty(2, 11, 11), false}, // nothing new
		{empty(3, 11, 11), true},  // a new term
	}
	for i, s := range steps {
		before := len(f.sent)
		fut, err := p.AppendEntries(s.req, &raft.AppendEntriesResponse{})
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if sent := len(f.sent) > before; sent != s.sent {
			t.Fatalf("step %d (%+v): sent %v, want %v", i, *s.req, sent, s.sent)
		}
		if !s.sent && (fut == nil || fut.Error() != nil || fut.Request() != s.req) {
			t.Fatalf("step %d: dropped append's future %+v", i, fut)
		}
	}
	// Quiet for repeatAfter since the last send, then the repeat goes out.
	clock = clock.Add(repeatAfter - time.Millisecond)
	if _, err := p.AppendEntries(empty(3, 11, 11), &raft.AppendEntriesResponse{}); err != nil || len(f.sent) != 5 {
		t.Fatalf("a repeat within repeatAfter was sent (%d sent, %v)", len(f.sent), err)
	}
	clock = clock.Add(time.Millisecond)
	if _, err := p.AppendEntries(empty(3, 11, 11), &raft.AppendEntriesResponse{}); err != nil || len(f.sent) != 6 {
		t.Fatalf("a repeat after repeatAfter was dropped (%d sent, %v)", len(f.sent), err)
	}
	f.fail = true
	if _, err := p.AppendEntries(empty(3, 11, 12), &raft.AppendEntriesResponse{}); err == nil {
		t.Fatal("a failed send reported no error")
	}
	f.fail = false
	if _, err := p.AppendEntries(empty(3, 11, 11), &raft.AppendEntriesResponse{}); err != nil || len(f.sent) != 7 {
		t.Fatalf("after a failed send the repeat of the last append sent was dropped (%d sent, %v)", len(f.sent), err)
	}
}
