package redis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/tidwall/redcon"

	"github.com/armada-orchestrator/armada/fsm"
)

// Blocking pops never lose an element to a failure between the state and
// the client:
//
//   - Each pop goes through Raft as ARMADA.POP with an ID of its own; a pop
//     whose outcome is unknown (the leader changed or the forward timed out
//     mid-write) is applied again with the same ID until it is known, and
//     the state answers a repeated ID with the element the first one took
//     (fsm.PopRetention bounds how long it remembers; retries stop well
//     before, at popRetry).
//   - A client that has left by the time the element is in hand, or whose
//     connection fails while the reply is written, does not get it: the
//     element is pushed back where it came from (LPUSH for BLPOP, RPUSH for
//     BRPOP), so the next consumer gets it.
//
// What TCP cannot tell remains as in Redis: a reply written into the
// kernel's buffer of a connection the peer is closing at that moment
// counts as delivered.

// popRetry bounds how long a pop with an unknown outcome is retried.
const popRetry = 30 * time.Second

// blockingPop waits until one of the keys holds a list, pops through Raft
// and writes the reply; a pop that finds the list already emptied by
// another client waits again. Raft orders the pops, so no two clients get
// the same element.
func (s *Server) blockingPop(w redcon.Conn, argv [][]byte) {
	argv = copyArgv(argv)
	timeout, e := fsm.ParseRedisTimeout(argv[len(argv)-1])
	if e != nil {
		writeReply(w, *e)
		return
	}
	keys := make([]string, 0, len(argv)-2)
	for _, k := range argv[1 : len(argv)-1] {
		keys = append(keys, string(k))
	}
	ctx := s.ctx
	if timeout > int64(math.MaxInt64/time.Millisecond) {
		timeout = 0 // longer than a Duration holds: as good as forever
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(timeout)*time.Millisecond)
		defer cancel()
	}
	nilArray := fsm.RedisReply{Kind: fsm.RedisNilArray}
	for {
		since := s.st.Index()
		has := false
		s.st.View(func(v *fsm.View) error {
			has = v.RedisHasList(keys, s.now(v))
			return nil
		})
		if has && connGone(w) {
			// Never pop for a client that has left.
			writeReply(w, nilArray)
			return
		}
		if has {
			r := s.pop(argv)
			if r.Kind != fsm.RedisNilArray {
				s.deliver(w, argv, r)
				return
			}
		}
		changes, ch, err := s.st.Changes(since)
		if err == nil && len(changes) > 0 {
			continue
		}
		if err != nil && !errors.Is(err, fsm.ErrCompacted) {
			writeReply(w, errReply("ERR armada: "+err.Error()))
			return
		}
		if errors.Is(err, fsm.ErrCompacted) {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			writeReply(w, nilArray)
			return
		case <-time.After(time.Second):
			if connGone(w) {
				writeReply(w, nilArray)
				return
			}
		}
	}
}

// pop applies one ARMADA.POP for a BLPOP/BRPOP argv (its timeout is
// replaced: the pop itself never blocks), retrying with the same ID while
// the outcome is unknown.
func (s *Server) pop(argv [][]byte) fsm.RedisReply {
	id := make([]byte, fsm.PopIDLen)
	binary.BigEndian.PutUint64(id, uint64(s.nowEstimate()))
	_, _ = rand.Read(id[8:])
	cmd := append([][]byte{[]byte("armada.pop"), id}, argv[:len(argv)-1]...)
	cmd = append(cmd, []byte("0"))
	deadline := time.Now().Add(popRetry)
	delay := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.WriteTimeout)
		r, err := s.ap.Apply(ctx, &fsm.RedisExec{Cmds: [][][]byte{cmd}})
		if err == nil && r != nil && len(r.Redis) == 1 {
			if err := s.st.WaitIndex(ctx, r.Index); err != nil {
				s.log.Warn("wait for own pop", "index", r.Index, "err", err)
			}
			cancel()
			return r.Redis[0]
		}
		cancel()
		var fe *fsm.Error
		switch {
		case errors.As(err, &fe):
			return errReply("ERR " + fe.Message) // refused: nothing was popped
		case err == nil:
			return errReply("ERR armada: no reply from the state machine")
		case s.ctx.Err() != nil || time.Now().After(deadline):
			return errReply("ERR armada: " + err.Error())
		}
		s.log.Info("blocking pop: outcome unknown, retrying", "err", err)
		select {
		case <-s.ctx.Done():
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// deliver writes a pop's reply; when the client is gone, the element goes
// back to its list instead.
func (s *Server) deliver(w redcon.Conn, argv [][]byte, r fsm.RedisReply) {
	if r.Kind == fsm.RedisArray && len(r.Arr) == 2 {
		if !connGone(w) {
			writeReply(w, r)
			bw := redcon.BaseWriter(w)
			if bw == nil || bw.Flush() == nil {
				return
			}
		}
		push := "rpush"
		if strings.EqualFold(string(argv[0]), "blpop") {
			push = "lpush"
		}
		back := s.write([][][]byte{{[]byte(push), r.Arr[0].Str, r.Arr[1].Str}})[0]
		if back.Kind == fsm.RedisErr {
			s.log.Error("blocking pop: client gone, element not pushed back", "key", string(r.Arr[0].Str), "err", string(back.Str))
		} else {
			s.log.Info("blocking pop: client gone, element pushed back", "key", string(r.Arr[0].Str))
		}
		return
	}
	writeReply(w, r)
}
