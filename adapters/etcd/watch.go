package etcd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/armada-orchestrator/armada/fsm"
)

// progressInterval is how often an idle watcher that asked for progress
// notifications gets one (etcd's default).
const progressInterval = 10 * time.Minute

type watchServer struct {
	pb.UnimplementedWatchServer
	s *Server
}

// watchStream is one Watch call: its watchers share the stream, and sends
// are serialised.
type watchStream struct {
	s      *Server
	stream pb.Watch_WatchServer
	ctx    context.Context
	sendMu sync.Mutex
	mu     sync.Mutex
	nextID int64
	cancel map[int64]context.CancelFunc
	wg     sync.WaitGroup
}

func (w *watchStream) send(resp *pb.WatchResponse) error {
	w.sendMu.Lock()
	defer w.sendMu.Unlock()
	return w.stream.Send(resp)
}

// Watch serves watchers from the state's change feed. Events come from the
// feed's ring of recent changes, which carries each put's value and the
// key's state before each put or delete (prev_kv): a start revision older
// than the ring (it holds 16,384 changes and fsm.MaxFeedBytes of keys and
// values) answers "compacted", with the oldest revision it still holds, and
// so does a watcher that fell that far behind.
func (ws *watchServer) Watch(stream pb.Watch_WatchServer) error {
	w := &watchStream{s: ws.s, stream: stream, ctx: stream.Context(), cancel: map[int64]context.CancelFunc{}}
	defer func() {
		w.mu.Lock()
		for _, c := range w.cancel {
			c()
		}
		w.mu.Unlock()
		w.wg.Wait()
	}()
	// Requests come through a goroutine, so that the stream can end when
	// its node loses the leader (a require-leader stream) while Recv waits.
	type received struct {
		req *pb.WatchRequest
		err error
	}
	reqs := make(chan received, 1)
	go func() {
		for {
			req, err := stream.Recv()
			select {
			case reqs <- received{req, err}:
			case <-w.ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	lost := ws.s.leaderLost(w.ctx)
	for {
		var req *pb.WatchRequest
		select {
		case <-lost:
			return rpctypes.ErrGRPCNoLeader
		case rc := <-reqs:
			if errors.Is(rc.err, io.EOF) {
				return nil
			}
			if rc.err != nil {
				return rc.err
			}
			req = rc.req
		}
		switch r := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if err := w.create(r.CreateRequest); err != nil {
				return err
			}
		case *pb.WatchRequest_CancelRequest:
			if r.CancelRequest == nil {
				continue
			}
			id := r.CancelRequest.WatchId
			w.mu.Lock()
			c, ok := w.cancel[id]
			delete(w.cancel, id)
			w.mu.Unlock()
			if ok {
				c()
				if err := w.send(&pb.WatchResponse{Header: w.s.currentHeader(), WatchId: id, Canceled: true}); err != nil {
					return err
				}
			}
		case *pb.WatchRequest_ProgressRequest:
			if err := w.send(&pb.WatchResponse{Header: w.s.currentHeader(), WatchId: -1}); err != nil {
				return err
			}
		}
	}
}

func (w *watchStream) create(r *pb.WatchCreateRequest) error {
	if r == nil {
		return nil
	}
	if len(r.Key) == 0 {
		r.Key = []byte{0} // as etcd: the smallest key
	}
	refuse := func(reason string) error {
		return w.send(&pb.WatchResponse{Header: w.s.currentHeader(), WatchId: -1, Created: true, Canceled: true,
			CancelReason: reason})
	}
	if len(r.RangeEnd) > 0 && !(len(r.RangeEnd) == 1 && r.RangeEnd[0] == 0) && bytes.Compare(r.Key, r.RangeEnd) >= 0 {
		return refuse("mvcc: watcher range is empty")
	}
	w.mu.Lock()
	id := r.WatchId
	if id == 0 {
		for {
			id = w.nextID
			w.nextID++
			if _, used := w.cancel[id]; !used {
				break
			}
		}
	}
	if _, used := w.cancel[id]; used {
		w.mu.Unlock()
		return refuse("mvcc: duplicate watch ID provided on the WatchStream")
	}
	ctx, cancel := context.WithCancel(w.ctx)
	w.cancel[id] = cancel
	w.mu.Unlock()
	if r.StartRevision <= 0 {
		// "From now" means after every write committed before the watch
		// was asked for, wherever it was made: a node behind the leader
		// first catches up, or it would replay a write the client already
		// saw done. Without a leader, now is this node's state.
		rctx, rcancel := context.WithTimeout(ctx, w.s.cfg.WriteTimeout)
		w.s.view(rctx, true, func(*fsm.View) error { return nil })
		rcancel()
	}
	hdr := w.s.currentHeader()
	start := r.StartRevision
	if start <= 0 {
		start = hdr.Revision + 1
	}
	if err := w.send(&pb.WatchResponse{Header: hdr, WatchId: id, Created: true}); err != nil {
		return err
	}
	wt := &watcher{w: w, id: id, req: r, next: uint64(start)}
	for _, f := range r.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			wt.noPut = true
		case pb.WatchCreateRequest_NODELETE:
			wt.noDelete = true
		}
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		wt.run(ctx)
	}()
	return nil
}

type watcher struct {
	w    *watchStream
	id   int64
	req  *pb.WatchCreateRequest
	next uint64 // the first revision not yet delivered
	// cursor is the feed index delivered through, once the first read
	// (by revision) has found where in the feed the watch starts.
	cursor          uint64
	started         bool
	noPut, noDelete bool
}

func (wt *watcher) inRange(key []byte) bool { return fsm.EtcdInRange(key, wt.req.Key, wt.req.RangeEnd) }

func (wt *watcher) run(ctx context.Context) {
	s := wt.w.s
	lastSent := time.Now()
	for {
		var changes []fsm.Change
		var ch <-chan struct{}
		var err error
		if wt.started {
			changes, ch, err = s.st.Changes(wt.cursor)
		} else {
			// Where the start revision is in the feed: a Batch entry's
			// commands each have a revision of their own.
			var through uint64
			if changes, through, ch, err = s.st.ChangesAfterRev(wt.next - 1); err == nil {
				wt.cursor, wt.started = through, true
			}
		}
		if errors.Is(err, fsm.ErrCompacted) {
			hdr := wt.w.s.currentHeader()
			wt.w.send(&pb.WatchResponse{Header: hdr, WatchId: wt.id, Canceled: true, CompactRevision: int64(s.st.OldestRev()),
				CancelReason: "etcdserver: mvcc: required revision has been compacted"})
			return
		}
		if err != nil {
			return
		}
		var events []*mvccpb.Event
		var last uint64
		stripped := false
		for _, c := range changes {
			if c.Rev < wt.next {
				wt.cursor = max(wt.cursor, c.Index)
				continue // before a start revision in the future
			}
			if c.Topic == "kv" && c.Stripped && wt.inRange([]byte(c.Key)) {
				// The feed let this change's values go before the watcher
				// got to it: what it would send is gone.
				stripped = true
				break
			}
			wt.cursor = max(wt.cursor, c.Index)
			last = max(last, c.Rev)
			if c.Topic != "kv" || !wt.inRange([]byte(c.Key)) {
				continue
			}
			if ev := wt.event(c); ev != nil {
				events = append(events, ev)
			}
		}
		wt.next = max(wt.next, last+1)
		if stripped {
			if len(events) > 0 {
				hdr := wt.w.s.currentHeader()
				hdr.Revision = int64(last)
				wt.w.send(&pb.WatchResponse{Header: hdr, WatchId: wt.id, Events: events})
			}
			wt.w.send(&pb.WatchResponse{Header: wt.w.s.currentHeader(), WatchId: wt.id, Canceled: true,
				CompactRevision: int64(s.st.OldestRev()), CancelReason: "etcdserver: mvcc: required revision has been compacted"})
			return
		}
		if len(events) > 0 {
			hdr := wt.w.s.currentHeader()
			hdr.Revision = int64(last)
			if err := wt.w.send(&pb.WatchResponse{Header: hdr, WatchId: wt.id, Events: events}); err != nil {
				return
			}
			lastSent = time.Now()
			continue
		}
		if len(changes) > 0 {
			continue
		}
		var tick <-chan time.Time
		if wt.req.ProgressNotify {
			tick = time.After(max(progressInterval-time.Since(lastSent), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-tick:
			if err := wt.w.send(&pb.WatchResponse{Header: wt.w.s.currentHeader(), WatchId: wt.id}); err != nil {
				return
			}
			lastSent = time.Now()
		}
	}
}

// event turns a change into an event, or nil when it is filtered out.
// prev_kv is the key's state before the change, as the feed kept it.
func (wt *watcher) event(c fsm.Change) *mvccpb.Event {
	var ev *mvccpb.Event
	switch {
	case c.Op == "put" && c.KV != nil && !wt.noPut:
		ev = &mvccpb.Event{Type: mvccpb.PUT, Kv: toKV(c.KV)}
	case c.Op == "delete" && !wt.noDelete:
		ev = &mvccpb.Event{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(c.Key), ModRevision: int64(c.Rev)}}
	default:
		return nil
	}
	if wt.req.PrevKv {
		ev.PrevKv = toKV(c.Prev)
	}
	return ev
}
