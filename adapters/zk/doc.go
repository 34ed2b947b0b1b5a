// Package zk is the wire-protocol layer of Armada's ZooKeeper adapter: it
// speaks jute, the binary serialization ZooKeeper clients (zkCli, Curator,
// go-zookeeper) use, so that they can talk to an Armada cluster unchanged.
//
// It provides:
//
//   - a bounds-checked jute [Encoder] and [Decoder] (big-endian integers,
//     one-byte booleans, length-prefixed buffers, strings and vectors where
//     -1 means null);
//   - framing: every packet is an int32 length followed by the payload,
//     limited to [MaxPacketSize] (ZooKeeper's default jute.maxbuffer), read
//     one at a time by a [FrameReader] and written by [AppendFrame];
//   - the session handshake ([ConnectRequest], [ConnectResponse]), the
//     [RequestHeader] and [ReplyHeader], op codes ([OpCode]), special xids,
//     error codes ([ErrCode]), watch event types and states, create modes and
//     permissions;
//   - every request and response record, a sealed [Request] interface with
//     [ParseRequest] / [DecodeRequest] dispatching on the header's op code,
//     and a sealed [Response] interface with [MarshalReply] /
//     [DecodeResponse], including multi and multiRead.
//
// Decoding never panics on malformed input: every length is checked against
// the bytes that remain and against MaxPacketSize before anything is
// allocated, so the memory a decode uses is bounded by its input. Like
// ZooKeeper, request decoding ignores bytes that follow a complete record.
//
// This package has no dependencies beyond the standard library and holds no
// state. The server that uses it (sessions kept in the replicated state,
// ephemeral nodes, watches, forwarding writes to the leader, four-letter
// words) comes in the next step.
package zk
