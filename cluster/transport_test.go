package cluster

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fakePipeline records the appends sent through it.
type fakePipeline struct {
	raft.AppendPipeline
	stall chan struct{} // when set, a send waits until it closes
	mu    sync.Mutex
	sent  []raft.AppendEntriesRequest
	fail  bool
}

func (f *fakePipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if f.stall != nil {
		<-f.stall
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return nil, errors.New("broken pipe")
	}
	f.sent = append(f.sent, *args)
	return nil, nil
}

func (f *fakePipeline) Close() error { return nil }

// appends returns what was sent so far.
func (f *fakePipeline) appends() []raft.AppendEntriesRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]raft.AppendEntriesRequest(nil), f.sent...)
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

// A commit the leader applied goes to the follower at once, in an empty
// append that follows the last one sent, capped at the last entry sent,
// and only when no append has carried it yet; Raft's own repeat of it is
// then dropped as any repeat.
func TestQuietPipelineTellsCommits(t *testing.T) {
	f := &fakePipeline{}
	clock := time.Unix(1000, 0)
	push := newCommitPush()
	p := &quietPipeline{AppendPipeline: f, now: func() time.Time { return clock }, push: push}
	push.add(p, "")
	hdr := raft.RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("127.0.0.1:1")}
	p.tell(5)
	if n := len(f.appends()); n != 0 {
		t.Fatalf("told a commit before any append was sent (%d sent)", n)
	}
	send := func(req *raft.AppendEntriesRequest) {
		t.Helper()
		if _, err := p.AppendEntries(req, &raft.AppendEntriesResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	send(&raft.AppendEntriesRequest{RPCHeader: hdr, Term: 2, PrevLogEntry: 10, PrevLogTerm: 1,
		LeaderCommitIndex: 10, Entries: []*raft.Log{{Index: 11, Term: 2}, {Index: 12, Term: 2}}})
	want := func(n int, prev, prevTerm, commit uint64) {
		t.Helper()
		sent := f.appends()
		if len(sent) != n {
			t.Fatalf("%d appends sent, want %d: %+v", len(sent), n, sent)
		}
		got := sent[n-1]
		if got.Term != 2 || string(got.ID) != "n1" || string(got.Addr) != "127.0.0.1:1" || len(got.Entries) != 0 ||
			got.PrevLogEntry != prev || got.PrevLogTerm != prevTerm || got.LeaderCommitIndex != commit {
			t.Fatalf("last append %+v, want an empty one of term 2 after %d (term %d) with commit %d", got, prev, prevTerm, commit)
		}
	}
	p.tell(11)
	want(2, 12, 2, 11)
	p.tell(11) // told already
	p.tell(10) // older
	if n := len(f.appends()); n != 2 {
		t.Fatalf("a commit already told went out again (%d sent)", n)
	}
	p.tell(15) // beyond what the pipeline sent: capped
	want(3, 12, 2, 12)
	p.tell(15)
	if n := len(f.appends()); n != 3 {
		t.Fatalf("a capped commit went out twice (%d sent)", n)
	}
	send(&raft.AppendEntriesRequest{RPCHeader: hdr, Term: 2, PrevLogEntry: 12, PrevLogTerm: 2, LeaderCommitIndex: 12})
	if n := len(f.appends()); n != 3 {
		t.Fatalf("Raft's repeat of a commit told was sent (%d sent)", n)
	}
	send(&raft.AppendEntriesRequest{RPCHeader: hdr, Term: 2, PrevLogEntry: 12, PrevLogTerm: 2,
		LeaderCommitIndex: 12, Entries: []*raft.Log{{Index: 13, Term: 2}}})
	// Through commitPush: a commit alone tells nobody; a kick wakes the
	// pipeline's goroutine, which tells its follower the last commit.
	push.committed(13)
	if len(p.wake) != 0 {
		t.Fatal("a commit without a kick woke the push")
	}
	push.kick()
	waitFor(t, 10*time.Second, func() error {
		if n := len(f.appends()); n != 5 {
			return fmt.Errorf("%d appends sent, want 5", n)
		}
		return nil
	})
	want(5, 13, 2, 13)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if len(push.open()) != 0 {
		t.Fatal("a closed pipeline is still registered")
	}
	select {
	case <-p.done:
	default:
		t.Fatal("a closed pipeline's goroutine was not told to end")
	}
	p.tell(14)
	if n := len(f.appends()); n != 5 {
		t.Fatalf("a closed pipeline sent (%d sent)", n)
	}
}

// A follower whose connection stalls delays no other follower's push.
func TestCommitPushGoesOnPastAStalledFollower(t *testing.T) {
	push := newCommitPush()
	stuck, ok := &fakePipeline{}, &fakePipeline{}
	var pipes []*quietPipeline
	for _, f := range []*fakePipeline{stuck, ok} {
		p := &quietPipeline{AppendPipeline: f, push: push}
		push.add(p, "")
		if _, err := p.AppendEntries(&raft.AppendEntriesRequest{Term: 1, PrevLogEntry: 1, PrevLogTerm: 1, LeaderCommitIndex: 1,
			Entries: []*raft.Log{{Index: 2, Term: 1}}}, &raft.AppendEntriesResponse{}); err != nil {
			t.Fatal(err)
		}
		pipes = append(pipes, p)
	}
	stall := make(chan struct{})
	stuck.stall = stall
	push.committed(2)
	push.kick()
	waitFor(t, 10*time.Second, func() error {
		if sent := ok.appends(); len(sent) != 2 || sent[1].LeaderCommitIndex != 2 {
			return fmt.Errorf("the healthy follower was sent %+v", sent)
		}
		return nil
	})
	close(stall)
	waitFor(t, 10*time.Second, func() error {
		if sent := stuck.appends(); len(sent) != 2 || sent[1].LeaderCommitIndex != 2 {
			return fmt.Errorf("the stalled follower was sent %+v once free", sent)
		}
		return nil
	})
	for _, p := range pipes {
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// Raft opens a pipeline to a follower only after an append outside one
// succeeded, and a kick may come before: the pipeline starts from that
// append and tells at once the commit the follower was not told.
func TestPipelineStartsFromTheAppendBeforeIt(t *testing.T) {
	push := newCommitPush()
	hdr := raft.RPCHeader{ProtocolVersion: 3, ID: []byte("n1"), Addr: []byte("127.0.0.1:1")}
	push.took("n2", lastSentOf(&raft.AppendEntriesRequest{RPCHeader: hdr, Term: 3, PrevLogEntry: 10, PrevLogTerm: 2,
		LeaderCommitIndex: 9, Entries: []*raft.Log{{Index: 11, Term: 3}, {Index: 12, Term: 3}}}))
	push.committed(12)
	push.kick() // no pipeline yet

	f := &fakePipeline{}
	p := &quietPipeline{AppendPipeline: f, push: push}
	push.add(p, "n2")
	defer p.Close()
	waitFor(t, 10*time.Second, func() error {
		if n := len(f.appends()); n != 1 {
			return fmt.Errorf("%d appends sent, want 1", n)
		}
		return nil
	})
	got := f.appends()[0]
	if got.Term != 3 || string(got.ID) != "n1" || len(got.Entries) != 0 || got.PrevLogEntry != 12 || got.PrevLogTerm != 3 || got.LeaderCommitIndex != 12 {
		t.Fatalf("first append %+v, want an empty one of term 3 after 12 (term 3) with commit 12", got)
	}

	// The record is used once, and only for its follower: a pipeline with
	// nothing before it sends nothing until it has sent an append.
	other := &fakePipeline{}
	q := &quietPipeline{AppendPipeline: other, push: push}
	push.add(q, "n2")
	defer q.Close()
	q.tell(12)
	if n := len(other.appends()); n != 0 {
		t.Fatalf("a pipeline reused another's start (%d sent)", n)
	}
}
