package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/armada-orchestrator/armada/fsm"
)

// Event is one message of GET /v1/events: a state change with the object as
// it is after it (read from the state at or after the change's index; nil
// for a delete, or when the object is already gone again).
type Event struct {
	ID     string `json:"id"`
	Index  uint64 `json:"index"`
	Topic  string `json:"topic"`
	Op     string `json:"op"`
	Key    string `json:"key"`
	Object any    `json:"object,omitempty"`
}

// eventReader reads the object of a change from a view.
type eventReader func(v *fsm.View, key string) (any, bool)

// eventTopics maps the change feed's topics that /v1/events publishes to
// how their objects are read. A topic whose reader is nil is published with
// its key only. Adding a topic to the stream is one entry here.
func eventTopics() map[string]eventReader {
	return map[string]eventReader{
		"cluster": func(v *fsm.View, key string) (any, bool) {
			return map[string]string{"cluster_id": v.ClusterID()}, true
		},
		"node": func(v *fsm.View, key string) (any, bool) { return v.Node(key) },
		"blueprint": func(v *fsm.View, key string) (any, bool) {
			info, ok := v.BlueprintInfo(key)
			if !ok {
				return nil, false
			}
			bp, ok := v.Blueprint(key, 0)
			if !ok {
				return nil, false
			}
			return blueprintEvent{Blueprint: bp, Versions: info.Versions, Updated: info.Updated}, true
		},
		"fleet": func(v *fsm.View, key string) (any, bool) {
			f, ok := v.Fleet(key)
			if !ok {
				return nil, false
			}
			return fleetSummary(v, f), true
		},
		"ship": func(v *fsm.View, key string) (any, bool) { return v.Ship(key) },
		// The shared key space and the replicated queues, locks and leases:
		// only when asked for (optInTopics).
		"kv": func(v *fsm.View, key string) (any, bool) {
			kv, ok := v.KV(key)
			if !ok {
				return nil, false
			}
			return toKVOut(kv, false), true
		},
		"lease": nil,
		"lock":  nil,
		"queue": nil,
		"deployment": func(v *fsm.View, key string) (any, bool) { // key: fleet/id
			fleet, id, ok := strings.Cut(key, "/")
			n, err := strconv.ParseUint(id, 10, 64)
			if !ok || err != nil {
				return nil, false
			}
			return v.Deployment(fleet, n)
		},
	}
}

// optInTopics are streamed only to subscribers that name them in ?topic=:
// the key space (which Redis, etcd and ZooKeeper clients may write
// thousands of times a second), leases, locks and queues are busier than
// the orchestrator's own objects, and a stream of everything (the web UI's)
// would carry them all.
var optInTopics = map[string]bool{"kv": true, "lease": true, "lock": true, "queue": true}

// topicAllocation is the event topic of a change to an allocated ship: a
// ship event whose ship is allocated goes out as an allocation instead
// (?topic=ship includes them).
const topicAllocation = "allocation"

// blueprintEvent is a blueprint's latest version with its version list.
type blueprintEvent struct {
	*fsm.Blueprint
	Versions []int `json:"versions"`
	Updated  int64 `json:"updated"`
}

const (
	// eventBufferDefault is how many bytes of events a subscriber may fall
	// behind (beyond what its connection buffers) before it is dropped.
	eventBufferDefault = 1 << 20
	eventBufferMin     = 4 << 10
	// eventWriteTimeout drops a subscriber that accepts nothing for this
	// long (its connection is gone or stuck).
	eventWriteTimeout = 10 * time.Second
	eventPing         = 15 * time.Second
	eventLeaderPoll   = time.Second
)

// cursor is a position in the event stream: after the change at position
// Pos of entry Index, or after the whole entry when Pos is -1.
type cursor struct {
	Index uint64
	Pos   int
}

// parseCursor reads an event id: "N" (after Raft entry N) or "N.P" (after
// the change at position P of entry N, when one entry changed several
// objects).
func parseCursor(s string) (cursor, error) {
	idx, pos, found := strings.Cut(s, ".")
	n, err := strconv.ParseUint(idx, 10, 64)
	if err != nil {
		return cursor{}, fmt.Errorf("must be a Raft index N or an event id N.P, not %q", s)
	}
	if !found {
		return cursor{Index: n, Pos: -1}, nil
	}
	p, err := strconv.Atoi(pos)
	if err != nil || p < 0 {
		return cursor{}, fmt.Errorf("must be a Raft index N or an event id N.P, not %q", s)
	}
	return cursor{Index: n, Pos: p}, nil
}

// parseTopics reads ?topic= (repeated or comma-separated); none means all
// but the opt-in ones.
func parseTopics(values []string, known map[string]eventReader) (map[string]bool, error) {
	want := map[string]bool{}
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue
			}
			if _, ok := known[t]; !ok && t != topicAllocation {
				names := []string{topicAllocation}
				for k := range known {
					names = append(names, k)
				}
				slices.Sort(names)
				return nil, badRequest("topic", "unknown topic %q; topics are %s", t, strings.Join(names, ", "))
			}
			want[t] = true
		}
	}
	if len(want) == 0 {
		for t := range known {
			if !optInTopics[t] {
				want[t] = true
			}
		}
	}
	if want["ship"] {
		want[topicAllocation] = true
	}
	return want, nil
}

// events streams state changes as server-sent events (GET /v1/events).
// Every event's id is the Raft index of its change ("N.P" for all but the
// last change of an entry that changed several objects), so ?since= or the
// Last-Event-ID header resume exactly after the last event received. A
// subscriber that falls too far behind is sent a final "dropped" event and
// disconnected; it never slows the cluster.
//
// A follower passes the request on to the leader (see eventsFromLeader);
// ?stale=true streams this node's own applied changes instead.
func (s *Server) events(c echo.Context) error {
	known := eventTopics()
	want, err := parseTopics(c.QueryParams()["topic"], known)
	if err != nil {
		return err
	}
	if c.QueryParam("stale") != "true" && s.eventsFromLeader(c) {
		return nil
	}
	buffer := eventBufferDefault
	if q := c.QueryParam("buffer"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < eventBufferMin || n > eventBufferDefault {
			return badRequest("buffer", "must be %d..%d bytes, not %q", eventBufferMin, eventBufferDefault, q)
		}
		buffer = n
	}
	st := s.c.State()
	from := cursor{Index: st.Index(), Pos: -1}
	field, raw := "since", c.QueryParam("since")
	if h := c.Request().Header.Get("Last-Event-ID"); h != "" {
		// A reconnecting EventSource sends the last id it got, and the
		// original URL: the id is the later position.
		field, raw = "Last-Event-ID", h
	}
	if raw != "" {
		if from, err = parseCursor(raw); err != nil {
			return badRequest(field, "%v", err)
		}
	}
	if _, _, err := st.Changes(from.after()); err != nil {
		if errors.Is(err, fsm.ErrCompacted) {
			return &statusError{status: http.StatusGone, body: apiError{Code: "compacted", Field: field,
				Message: fmt.Sprintf("events after %s are no longer kept; read the state again and subscribe from its X-Armada-Index", raw)}}
		}
		return err
	}

	resp := c.Response()
	h := resp.Header()
	h.Set(echo.HeaderContentType, "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Armada-Index", strconv.FormatUint(st.Index(), 10))
	resp.WriteHeader(http.StatusOK)

	sub := &subscriber{max: buffer, wake: make(chan struct{}, 1), done: make(chan struct{}), last: from}
	sub.push([]byte("retry: 1000\n\n"))
	go sub.writeLoop(resp)
	defer func() { <-sub.done }()
	defer sub.close()

	ctx := c.Request().Context()
	var buf bytes.Buffer
	leader, term := s.c.Leader(), s.c.Term()
	writeLeader(&buf, leader, term)
	sub.push(buf.Bytes())
	leaderTick := time.NewTicker(eventLeaderPoll)
	defer leaderTick.Stop()
	lastSent := time.Now()
	for {
		select {
		case <-sub.done: // the connection is gone
			return nil
		case <-ctx.Done():
			return nil
		default:
		}
		changes, notify, err := st.Changes(from.after())
		if err != nil {
			if errors.Is(err, fsm.ErrCompacted) {
				sub.drop(fmt.Sprintf("events after %s are no longer kept", from), sub.queued())
			}
			return nil
		}
		if len(changes) > 0 {
			buf.Reset()
			from = s.encodeEvents(&buf, changes, from, want, known)
			if buf.Len() > 0 {
				lastSent = time.Now()
				if !sub.push(buf.Bytes()) {
					sub.drop(fmt.Sprintf("the subscriber fell more than %d bytes behind", buffer), sub.queued())
					return nil
				}
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.streams.closing():
			return nil
		case <-sub.done:
			return nil
		case <-notify:
		case <-leaderTick.C:
			if l, t := s.c.Leader(), s.c.Term(); l != leader || t != term {
				leader, term = l, t
				buf.Reset()
				writeLeader(&buf, leader, term)
				sub.push(buf.Bytes())
				lastSent = time.Now()
			} else if time.Since(lastSent) >= eventPing {
				sub.push([]byte(": ping\n\n"))
				lastSent = time.Now()
			}
		}
	}
}

// eventsFromLeader streams the events of the leader when this node is a
// follower: a follower applies an entry only once the leader's next
// message tells it the entry is committed (tens of milliseconds later
// when nothing else is written), while the leader applies it at once.
// Event ids are Raft indexes, the same on every node, so a client may
// resume on any node. It reports false, having sent nothing, when the
// request should be served here: on the leader, without a known leader,
// for a request another node forwarded, or when the leader cannot be
// reached (?stale=true always serves here).
func (s *Server) eventsFromLeader(c echo.Context) bool {
	r := c.Request()
	leader := s.c.Leader()
	if r.Header.Get(forwardedHeader) != "" || leader == "" || leader == s.c.Name() {
		return false
	}
	var base string
	s.c.State().View(func(v *fsm.View) error {
		if n, ok := v.Node(leader); ok && n.HTTPAddr != "" {
			base = n.HTTPAddr
		}
		return nil
	})
	if base == "" {
		return false
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-s.streams.closing():
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+r.URL.RequestURI(), nil)
	if err != nil {
		return false
	}
	req.Header.Set(forwardedHeader, "1")
	for _, k := range []string{"Last-Event-ID", "Authorization"} {
		if v := r.Header.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	up, err := logProxy.Do(req)
	if err != nil {
		return false
	}
	defer up.Body.Close()
	resp := c.Response()
	for _, k := range []string{echo.HeaderContentType, "Cache-Control", "X-Accel-Buffering", "X-Armada-Index"} {
		if v := up.Header.Get(k); v != "" {
			resp.Header().Set(k, v)
		}
	}
	resp.Header().Set("X-Armada-Node", leader)
	resp.WriteHeader(up.StatusCode)
	// Until either side goes away: a cut stream ends this one, and the
	// client resumes.
	_, _ = io.CopyBuffer(flushingWriter{resp}, up.Body, make([]byte, 32<<10))
	return true
}

// streams lets a shutting-down server end its event streams, which would
// otherwise hold http.Server.Shutdown until its deadline. The zero value is
// ready to use.
//
// It also keeps the most recently encoded events, so that a change is
// read and encoded once however many subscribers follow it.
type streams struct {
	mu     sync.Mutex
	closed bool
	done   chan struct{}
	frames map[cursor]*frame
	order  []cursor // frames' keys, oldest first
}

// maxFrames bounds the encoded events a node keeps for its subscribers.
const maxFrames = 4096

func (st *streams) frame(id cursor) *frame {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.frames[id]
}

func (st *streams) store(id cursor, f *frame) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.frames == nil {
		st.frames = map[cursor]*frame{}
	}
	if _, ok := st.frames[id]; ok {
		return
	}
	if len(st.order) >= maxFrames {
		delete(st.frames, st.order[0])
		st.order = st.order[1:]
	}
	st.frames[id] = f
	st.order = append(st.order, id)
}

// closing is closed once CloseStreams has been called.
func (st *streams) closing() <-chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done == nil {
		st.done = make(chan struct{})
		if st.closed {
			close(st.done)
		}
	}
	return st.done
}

// CloseStreams ends every event stream and refuses new ones; register it
// with http.Server.RegisterOnShutdown.
func (s *Server) CloseStreams() {
	st := &s.streams
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	st.closed = true
	if st.done != nil {
		close(st.done)
	}
}

// flushingWriter sends every write to the client at once.
type flushingWriter struct{ w http.ResponseWriter }

func (f flushingWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	if err == nil {
		err = http.NewResponseController(f.w).Flush()
	}
	return n, err
}

// after is the index to read the change feed after for c.
func (c cursor) after() uint64 {
	if c.Pos >= 0 && c.Index > 0 {
		return c.Index - 1
	}
	return c.Index
}

func (c cursor) String() string {
	if c.Pos >= 0 {
		return fmt.Sprintf("%d.%d", c.Index, c.Pos)
	}
	return strconv.FormatUint(c.Index, 10)
}

// encodeEvents writes the events of changes (every change of each entry
// they hold, in feed order) that come after from and match want. Each
// event is encoded once per node and shared by every subscriber (see
// streams); the ones not encoded yet are read from one view. It returns
// the cursor after the last change.
func (s *Server) encodeEvents(buf *bytes.Buffer, changes []fsm.Change, from cursor, want map[string]bool, known map[string]eventReader) cursor {
	type item struct {
		ch   fsm.Change
		id   cursor
		last bool
		f    *frame
	}
	var items []item
	misses := 0
	pos := 0
	for i, ch := range changes {
		if i > 0 && changes[i-1].Index == ch.Index {
			pos++
		} else {
			pos = 0
		}
		if ch.Index == from.Index && pos <= from.Pos {
			continue
		}
		if _, ok := known[ch.Topic]; !ok || optInTopics[ch.Topic] && !want[ch.Topic] || laterSame(changes[i+1:], ch) {
			continue
		}
		it := item{ch: ch, id: cursor{Index: ch.Index, Pos: pos}, last: i == len(changes)-1 || changes[i+1].Index != ch.Index}
		it.f = s.streams.frame(it.id)
		if it.f == nil {
			misses++
		}
		items = append(items, it)
	}
	if misses > 0 {
		_ = s.c.State().View(func(v *fsm.View) error {
			for i := range items {
				if it := &items[i]; it.f == nil {
					it.f = encodeFrame(v, it.ch, it.id, it.last, known[it.ch.Topic])
					s.streams.store(it.id, it.f)
				}
			}
			return nil
		})
	}
	for _, it := range items {
		if want[it.f.topic] {
			buf.Write(it.f.data)
		}
	}
	last := changes[len(changes)-1]
	return cursor{Index: last.Index, Pos: -1}
}

// frame is one encoded event and its topic.
type frame struct {
	topic string
	data  []byte
}

// encodeFrame encodes the event of one change with its object as v has it.
func encodeFrame(v *fsm.View, ch fsm.Change, id cursor, last bool, read eventReader) *frame {
	ev := Event{Index: ch.Index, Topic: ch.Topic, Op: ch.Op, Key: ch.Key, ID: id.String()}
	if last {
		ev.ID = strconv.FormatUint(ch.Index, 10)
	}
	if ch.Op != "delete" && read != nil {
		if obj, ok := read(v, ch.Key); ok {
			ev.Object = obj
			if sh, isShip := obj.(*fsm.Ship); isShip && sh.State == fsm.ShipAllocated {
				ev.Topic = topicAllocation
			}
		}
	}
	var b bytes.Buffer
	writeEvent(&b, &ev)
	return &frame{topic: ev.Topic, data: b.Bytes()}
}

// laterSame reports whether the same entry changes the same object again
// later: its event then goes out once, at the last change.
func laterSame(rest []fsm.Change, ch fsm.Change) bool {
	for _, r := range rest {
		if r.Index != ch.Index {
			return false
		}
		if r.Topic == ch.Topic && r.Key == ch.Key {
			return true
		}
	}
	return false
}

func writeEvent(buf *bytes.Buffer, ev *Event) {
	data, err := json.Marshal(ev)
	if err != nil {
		data, _ = json.Marshal(Event{ID: ev.ID, Index: ev.Index, Topic: ev.Topic, Op: ev.Op, Key: ev.Key})
	}
	fmt.Fprintf(buf, "id: %s\nevent: %s\ndata: %s\n\n", ev.ID, ev.Topic, data)
}

// writeLeader writes a "leader" event: who leads, as this node sees it.
// It has no id, so it does not move a client's resume position.
func writeLeader(buf *bytes.Buffer, leader string, term uint64) {
	data, _ := json.Marshal(map[string]any{"leader": leader, "term": term})
	fmt.Fprintf(buf, "event: leader\ndata: %s\n\n", data)
}

// subscriber decouples following the feed from writing to the client: the
// feed side queues encoded events, the writer sends them. A client whose
// queue grows past max is dropped.
type subscriber struct {
	max  int
	wake chan struct{}
	done chan struct{} // closed when the writer has finished

	mu      sync.Mutex
	pending []byte
	closed  bool
	last    cursor // the position after the last event queued
}

// push queues frames; false when the queue is over its bound.
func (s *subscriber) push(frames []byte) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return true
	}
	if len(s.pending) > 0 && len(s.pending)+len(frames) > s.max {
		s.mu.Unlock()
		return false
	}
	s.pending = append(s.pending, frames...)
	s.last = lastID(frames, s.last)
	s.mu.Unlock()
	s.signal()
	return true
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// queued is the position after the last event queued: the writer sends
// every queued event before a final one.
func (s *subscriber) queued() cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// drop queues the final "dropped" event, after which the writer ends the
// stream.
func (s *subscriber) drop(reason string, resume cursor) {
	data, _ := json.Marshal(map[string]string{"reason": reason, "resume": resume.String()})
	s.mu.Lock()
	s.pending = append(s.pending, fmt.Sprintf("event: dropped\ndata: %s\n\n", data)...)
	s.closed = true
	s.mu.Unlock()
	s.signal()
}

// close ends the stream after what is queued.
func (s *subscriber) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.signal()
}

func (s *subscriber) writeLoop(w http.ResponseWriter) {
	defer close(s.done)
	rc := http.NewResponseController(w)
	for range s.wake {
		s.mu.Lock()
		out, closed := s.pending, s.closed
		s.pending = nil
		s.mu.Unlock()
		if len(out) > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
			if _, err := w.Write(out); err != nil {
				s.fail()
				return
			}
			if err := rc.Flush(); err != nil {
				s.fail()
				return
			}
		}
		if closed {
			return
		}
	}
}

// fail stops queueing once the connection is gone.
func (s *subscriber) fail() {
	s.mu.Lock()
	s.closed, s.pending = true, nil
	s.mu.Unlock()
}

// lastID finds the last "id:" line in frames.
func lastID(frames []byte, prev cursor) cursor {
	i := bytes.LastIndex(frames, []byte("\nid: "))
	if i < 0 {
		if !bytes.HasPrefix(frames, []byte("id: ")) {
			return prev
		}
		i = -1
	}
	rest := frames[i+len("\nid: "):]
	if j := bytes.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	c, err := parseCursor(string(rest))
	if err != nil {
		return prev
	}
	return c
}

// StreamEvent is one server-sent event as a client reads it.
type StreamEvent struct {
	ID   string // the event's id field; empty when it has none
	Type string // the event field ("message" when absent)
	Data []byte
}

// ReadEvents reads a server-sent event stream from r and calls fn for each
// event, until r ends (nil), fails, or fn returns an error (returned).
func ReadEvents(r io.Reader, fn func(StreamEvent) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var ev StreamEvent
	var data bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: gather it whole.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if data.Len() > 0 || ev.Type != "" {
				if ev.Type == "" {
					ev.Type = "message"
				}
				ev.Data = bytes.TrimSuffix(bytes.Clone(data.Bytes()), []byte("\n"))
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, data = StreamEvent{}, bytes.Buffer{}
			continue
		}
		if line[0] == ':' {
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(name) {
		case "id":
			ev.ID = string(value)
		case "event":
			ev.Type = string(value)
		case "data":
			data.Write(value)
			data.WriteByte('\n')
		}
	}
}
