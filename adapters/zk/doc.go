// Package zk is Armada's ZooKeeper adapter: `armada join --zk-addr
// 127.0.0.1:2181` serves the ZooKeeper client protocol from the replicated
// state, on every node that sets it, so that zkCli, go-zookeeper, Curator
// and other ZooKeeper clients work unchanged against any node or all of
// them.
//
// # Wire protocol
//
// The package speaks jute, the binary serialization ZooKeeper clients use:
// a bounds-checked [Encoder] and [Decoder]; framing (an int32 length then
// the payload, limited to [MaxPacketSize], ZooKeeper's default
// jute.maxbuffer) with [FrameReader] and [AppendFrame]; the handshake
// ([ConnectRequest], [ConnectResponse]); every request and response record
// behind the sealed [Request] and [Response] interfaces, multi and
// multiRead included; op codes, error codes, watch events and create modes.
// Decoding never panics and its memory is bounded by its input.
//
// # Data model
//
// Znodes are a tree of their own in the replicated state (fsm/zk.go), not
// keys of the key space Redis, etcd and /v1/kv share. Every ZooKeeper write
// is one fsm.ZKMulti command (type 43): a single create, delete, setData,
// setACL or check is a multi of one operation, and a multi's operations are
// applied atomically in one Raft entry — if one fails nothing changes, and
// each result says OK before it, its error, RUNTIMEINCONSISTENCY after it,
// as ZooKeeper does. A follower forwards writes to the leader; the answer
// waits until the node the client is on has applied the entry, so a client
// always sees its own writes. Reads (getData, exists, getChildren(2),
// getACL, multiRead, getAllChildrenNumber, getEphemerals) are served from
// the local state, as ZooKeeper serves them from the server a client is
// connected to; sync waits for the leader's read index, after which the
// client sees everything committed before it.
//
// zxids: each ZooKeeper command takes one ID from the state's allocator —
// the Raft index of its entry when the entry holds one command, and still
// unique and increasing when the leader's batcher groups several commands
// into one entry. czxid, mzxid, pzxid, a session's ID and the zxid in every
// reply header are such IDs (reads carry the highest applied one). The
// epoch is not encoded in the high bits as in ZooKeeper.
//
// Stats follow ZooKeeper: version, cversion (creates and deletes of
// children), aversion, ctime and mtime (the leader's clock), ephemeralOwner,
// dataLength, numChildren and pzxid. A sequential node's suffix is the
// number of children ever created under its parent, printed %010d, exactly
// as ZooKeeper numbers them. Containers are created as persistent nodes
// (they are never deleted when empty); TTL nodes, SASL and reconfig
// answer UNIMPLEMENTED.
//
// # Sessions
//
// Sessions live in the replicated state (fsm.ZKCreateSession, type 40), so
// they survive the loss of the node a client was connected to and leader
// failover: a client reconnects to any node with its session ID and
// password and carries on (the node first waits until it has applied the
// zxid the client last saw). Timeouts are negotiated into [2, 20] ticks of
// 2 s, as ZooKeeper's defaults. Every node records, through Raft, a heartbeat
// of the sessions connected to it once a second (fsm.ZKTouch, type 41); the
// leader expires a session whose last heartbeat, by the leader's clock, is
// older than its timeout (fsm.ZKClose with Expire, type 42) — a new leader
// first gives every session a full timeout from when it took over; when the
// leader runs no adapter, the other nodes' adapters propose the expiry two
// ticks later, still judged by the leader's clock stamped into the entry —
// and its ephemeral nodes are deleted in the same entry. closeSession ends the
// session at once. A connection silent for its session timeout is closed.
//
// # Watches
//
// Data, exists and child watches are one-shot, per connection, and kept in
// the memory of the node the client is on; they fire from the node's change
// feed: NodeCreated, NodeDeleted and NodeDataChanged on the node's data and
// exists watches, NodeChildrenChanged on its parent's child watches,
// NodeDeleted on its own child watches. addWatch's persistent watches
// (Curator's CuratorCache) stay once they fire: a persistent one hears its
// node's creation, deletion, data and children, a recursive one the
// creations, deletions and data of its node and every node under it (of
// a node under it only when the connection may read that node, as
// ZooKeeper since 3.8.4: CVE-2024-23944). A
// connection hears each event once, whichever of its watches it matches
// (ZooKeeper 3.8 drops a persistent watch when a one-shot one on the same
// node fires, ZOOKEEPER-4466; the adapter keeps it, as 3.9 does). A watch starts at the state the
// read that set it saw, and every reply waits until the events of the
// changes it shows have been sent, so a client always gets an event before
// any reply that shows the change. After a reconnect, setWatches re-arms a
// client's watches and fires at once those whose node changed after the
// zxid the client last saw; setWatches2 re-arms persistent watches, with
// no events for what they missed, as ZooKeeper does. removeWatches and
// checkWatches work for ZooKeeper 3.8's three types (Any removes
// persistent watches too).
//
// # ACLs
//
// Schemes world (anyone), digest (user:base64(sha1(user:password)), set with
// addauth digest user:password), ip (an address or CIDR; every connection
// has its client's IP as an identity) and, in a create or setACL, auth
// (expanded into the session's digest identities; without one it is
// INVALIDACL). Permissions are checked as ZooKeeper does: CREATE and DELETE
// on the parent, WRITE for setData, READ for getData, getChildren and
// check, ADMIN for setACL, READ or ADMIN for getACL (digest IDs shown as
// x:x without ADMIN). There is no super user.
//
// # Read-only views
//
// /zookeeper (with its config and quota children) and /armada are views:
// deleting /zookeeper or one of its children answers BADARGUMENTS, as in
// ZooKeeper, and every other write at or under them fails with NOAUTH
// (ZooKeeper lets clients write under /zookeeper). /armada shows the queues whose names are
// paths under it — the scheduler queue at /armada/scheduler/queue and each
// worker node's queue at /armada/worker/{node}/queue — with one child per
// item, named by its ID (%010d), holding the item's data (a ship ID), with
// czxid the item's ID and ctime when it was queued. A child watch on a
// queue fires when the queue changes. "/" lists them besides its own
// children.
//
// # Four-letter words
//
// ruok, isro, srvr, stat and mntr are answered in ZooKeeper 3.8's format
// (stats.go): the node's own counters (packets in and out, request
// latency, outstanding requests, connections, watches) and totals of the
// replicated tree (znodes, ephemerals, sessions, approximate data size).
// The mode is leader for the Raft leader, follower for other voters,
// observer for non-voters; the leader's mntr adds its learners and which
// of them gossip sees alive. Others answer that they are not whitelisted.
//
// # Proof
//
// The differential tests run the same go-zookeeper session (plain,
// sequential and ephemeral nodes, every error, data, exists and child
// watches, multi, digest/auth/world ACLs, sync), the same zkCli session
// and the same admin words against a real ZooKeeper 3.8 (the Debian package) and a 3-node Armada and
// require identical transcripts (zxids numbered by first appearance). A
// failover test kills the Raft leader under two sessions: the one that can
// reconnect keeps its ephemeral node, the one that cannot expires and loses
// its node. `make bench` compares 64 clients' writes with a 3-member
// ZooKeeper.
package zk
