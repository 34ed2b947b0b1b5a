package fsm

import (
	"bytes"
	"encoding/hex"
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sampleCommands returns one command of every type with every encoded
// field set to a non-zero value (and extreme values where they matter).
func sampleCommands() []Command {
	spec := Blueprint{
		Name: "arena", Version: 3, Unit: "[Service]\nExecStart=/bin/arena\n",
		Resources:    Resources{CPUMHz: 500, MemoryMB: 256},
		Ports:        []Port{{Name: "game", Protocol: "udp"}, {Name: "admin", Protocol: "tcp"}},
		Env:          map[string]string{"MODE": "ranked", "Z": "ünïcode"},
		Secrets:      map[string]string{"API_KEY": "s3cr3t"},
		SecretNames:  []string{"API_KEY"},
		Health:       &Health{Type: "http", Port: "admin", Path: "/h", Interval: Duration(1500 * time.Millisecond), Timeout: Duration(time.Second), Failures: 4},
		Labels:       map[string]string{"game": "arena"},
		NodeSelector: map[string]string{"region": "eu"},
		Created:      1234,
	}
	return []Command{
		&KVPut{Key: "k/ey", Value: []byte{0, 1, 0xff}, Lease: math.MaxUint64, TTLms: -5, HasCAS: true, CAS: 1 << 40, Now: math.MinInt64},
		&KVDelete{Key: "pre", Prefix: true, HasCAS: true, CAS: 9},
		&LeaseGrant{TTLms: math.MaxInt64, Now: 1},
		&LeaseKeepAlive{ID: 77, Now: 1700000000000},
		&LeaseRevoke{ID: 300},
		&Expire{Now: -1},
		&QueuePush{Queue: "jobs", Data: []byte("payload"), Now: 5},
		&QueueClaim{Queue: "jobs", Consumer: "w1", VisibilityMs: 30000, Now: 6},
		&QueueAck{Queue: "jobs", ID: 12, Consumer: "w1"},
		&QueueRelease{Queue: "jobs", ID: 13, Consumer: "w2"},
		&LockAcquire{Name: "deploy", Owner: "alice", TTLms: 1000, Now: 7},
		&LockRelease{Name: "deploy", Owner: "alice"},
		&NodeUpsert{Node: Node{
			Name: "n1", Address: "a", GossipAddr: "g", RaftAddr: "r", HTTPAddr: "h", Role: RoleWorker,
			Server: true, Worker: true, Status: NodeSuspect, Drain: true,
			Labels:   map[string]string{"b": "2", "a": "1", "": "empty"},
			Capacity: Resources{CPUMHz: -1, MemoryMB: math.MaxInt64}, Version: "v9",
		}, Now: 8},
		&NodeRemove{Name: "n1"},
		&BlueprintPut{Spec: spec, Sealed: []byte("sealed"), SecretsHash: []byte("hash"), Now: 9},
		&BlueprintDelete{Name: "arena"},
		&ClusterInit{ClusterID: "cid", Key: bytes.Repeat([]byte{0xab}, 32)},
		&Batch{Cmds: []Command{
			&KVPut{Key: "b", Value: []byte("1"), HasCAS: true, Now: 3},
			&BlueprintPut{Spec: spec, Sealed: []byte("s"), SecretsHash: []byte("h"), Now: 4},
			&LeaseRevoke{ID: 2},
			&ShipStop{Ships: []string{"s"}, Why: StopDrain, Now: 5},
		}},
		&Forwarded{Origin: 1<<63 | 5, Seq: 9, Cmd: &KVPut{Key: "f", Value: []byte("v"), Now: 3}},
		&FleetPut{Spec: Fleet{
			Name: "arena", Replicas: MaxReplicas,
			Versions: []FleetVersion{{Blueprint: "arena", Version: 3, Weight: 90}, {Blueprint: "arena", Weight: 10}},
			Placement: &Placement{Strategy: StrategyPack, Constraints: []Constraint{
				{Label: "region", Op: "in", Value: "eu,us"}, {Label: "gpu", Op: "not_exists"},
			}},
			Buffer:     &Buffer{Ready: 1, Min: 2, Max: 3},
			Update:     &Update{MaxParallel: 4, DrainLB: true, AutoRollback: true},
			Generation: 5, Created: 6, Updated: 7,
		}, Now: 10},
		&FleetDelete{Name: "arena", Now: 11},
		&FleetScale{Name: "arena", Replicas: -3, Now: math.MaxInt64},
		&ShipCreate{Fleet: "arena", Blueprint: "arena", Version: 3, Count: 1 << 40, Now: 12},
		&ShipPlace{
			Places: []Place{
				{Ship: "arena-a", Node: "n1", Ports: []int{20000, 65535, 0}},
				{Ship: "arena-b", Node: "n2", Ports: []int{-1}},
			},
			Pending: []Pending{{Ship: "arena-c", Reason: "no node has 500 MHz free"}, {Ship: "arena-d", Reason: "ünïcode"}},
			Now:     13,
		},
		&ShipStop{Ships: []string{"arena-a", "arena-b", ""}, Why: StopSurplus, Reason: "scale down", Now: 14},
		&ShipReport{Node: "n1", Reports: []Report{
			{Ship: "arena-a", State: ShipReady, Reason: "healthy"},
			{Ship: "arena-b", State: ShipFailed, Reason: "exit 1"},
		}, Now: 15},
		&ShipLost{Node: "n2", Reason: "node dead", Now: 16},
		&ShipPurge{Ships: []string{"arena-a", "arena-b"}},
		&NodeDrain{Name: "n1", Enable: true, Now: 17},
		&NodeReport{Name: "n1", PortsRange: "20000-29999", HostPorts: []int{20001, 29999, 1 << 40}, Now: 18},
		&RedisExec{Cmds: [][][]byte{{[]byte("SET"), []byte("k"), {0, 0xff}, []byte("EX"), []byte("10")}, {[]byte("GET"), {}}}, Now: math.MaxInt64},
		&EtcdTxn{Compares: []EtcdCompare{{Key: []byte{0xff}, RangeEnd: []byte{0}, Target: EtcdTargetLease, Result: EtcdNotEqual, Value: []byte("v"), Num: math.MinInt64}},
			Success: []EtcdOp{{Kind: EtcdOpPut, Key: []byte("k"), Value: []byte{0}, Lease: math.MaxUint64, IgnoreValue: true, IgnoreLease: true, PrevKV: true}},
			Failure: []EtcdOp{{Kind: EtcdOpRange, Key: []byte("a"), RangeEnd: []byte("b"), Limit: math.MaxInt64, KeysOnly: true, CountOnly: true,
				SortOrder: EtcdSortDescend, SortTarget: EtcdSortValue, MinMod: 1, MaxMod: -1, MinCreate: 2, MaxCreate: math.MinInt64}},
			Node: "n", Addr: "a"},
		&ShipAllocate{Requests: []AllocRequest{
			{Fleet: "arena", Selector: map[string]string{"map": "dust", "": ""}, Strategy: AllocDistributed, Labels: map[string]string{"match": "ünï"}, RequestID: "req-1"},
			{},
		}, Now: math.MinInt64},
		&shipAllocate1{ShipAllocate{Requests: []AllocRequest{{Fleet: "arena", Labels: map[string]string{"a": ""}}, {}}, Now: 23}},
		&ShipSDK{Ship: "arena-a", Node: "n1", Op: SDKReserve, Key: "k", Value: "v", Seconds: math.MaxInt64, Now: 19},
		&DeployUpdate{Fleet: "arena", ID: math.MaxUint64, State: DeployFailed, Reason: "no progress", Total: 10, Updated: -1, Old: math.MaxInt32, Progress: true, Rollback: true, Now: 20},
		&ZKCreateSession{TimeoutMs: 4000, Passwd: []byte{0, 1}, Now: 19},
		&ZKTouch{IDs: []int64{1, math.MaxInt64, -1}, Now: 20},
		&ZKClose{IDs: []int64{7}, Expire: true, Now: 21},
		&ZKMulti{Session: 3, Auth: []string{"digest:u:h"}, Ops: []ZKOp{{Kind: ZKOpCreate, Path: "/a", Data: []byte{0},
			ACL: []ZKACL{{Perms: 31, Scheme: "world", ID: "anyone"}}, Flags: 3, Version: -1}}, Now: 22},
		&ZKMulti{Session: 4, Ops: []ZKOp{{Kind: ZKOpCreate, Path: "/e", Data: []byte{}}, {Kind: ZKOpSet, Path: "/e"},
			{Kind: ZKOpSet, Path: "/e", Data: []byte{1}}}, Now: 23, EmptyData: true},
		&UsageReport{Node: "n1", CPUMHz: 250, MemoryMB: 1 << 40, Ships: []ShipUsage{{Ship: "arena-a", CPUMHz: 0, MemoryMB: 12}, {Ship: "", CPUMHz: -1}}, Now: 19},
		&FeatureOn{Name: FeatureOwnRevisions},
	}
}

// zeroCommands returns the zero value of every command type.
func zeroCommands() []Command {
	var out []Command
	for _, mk := range commandTable {
		if mk != nil {
			out = append(out, mk())
		}
	}
	return out
}

func TestSamplesCoverEveryType(t *testing.T) {
	seen := map[CmdType]bool{}
	for _, c := range sampleCommands() {
		if seen[c.Type()] {
			t.Errorf("type %d sampled twice", c.Type())
		}
		seen[c.Type()] = true
	}
	for typ, mk := range commandTable {
		if mk != nil && !seen[CmdType(typ)] {
			t.Errorf("no sample for type %d (%T)", typ, mk())
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, c := range sampleCommands() {
		t.Run(reflect.TypeOf(c).Elem().Name(), func(t *testing.T) {
			b := Encode(c)
			if b[0] != byte(c.Type()) {
				t.Fatalf("type byte %d, want %d", b[0], c.Type())
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, c) {
				t.Fatalf("round trip:\n got  %#v\n want %#v", got, c)
			}
			if !bytes.Equal(Encode(got), b) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

func TestEncodeDecodeZeroValues(t *testing.T) {
	// Zero commands round trip up to nil/empty slices, so compare the
	// canonical encodings.
	for _, c := range zeroCommands() {
		if _, ok := c.(*Forwarded); ok {
			continue // it wraps a command, and its zero value has none (TestForwardedNeedsACommand)
		}
		b := Encode(c)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		if got.Type() != c.Type() || !bytes.Equal(Encode(got), b) {
			t.Fatalf("%T: zero value does not round trip", c)
		}
	}
}

func TestEncodeIsDeterministic(t *testing.T) {
	// Maps are encoded sorted, whatever the iteration order.
	labels := map[string]string{}
	for i := range 50 {
		labels[strings.Repeat("k", i+1)] = strings.Repeat("v", 50-i)
	}
	c := &NodeUpsert{Node: Node{Name: "n", Labels: labels}}
	first := Encode(c)
	for range 20 {
		if !bytes.Equal(Encode(c), first) {
			t.Fatal("encoding of a map varies")
		}
	}
	bp := &BlueprintPut{Spec: Blueprint{Name: "x", Env: labels, Labels: labels}}
	first = Encode(bp)
	for range 20 {
		if !bytes.Equal(Encode(bp), first) {
			t.Fatal("encoding of a blueprint varies")
		}
	}
}

// TestEncodingIsStable pins the wire format: entries already in Raft logs
// must decode the same forever. The first few are worked out by hand from
// the format (uvarint, zigzag varint, length-prefixed bytes, 0/1 bools).
func TestEncodingIsStable(t *testing.T) {
	for _, tc := range []struct {
		c   Command
		hex string
	}{
		// type 1; "k"; "v"; lease 1; ttl -1 → 1; cas flag 1; cas 2; now 3 → 6
		{&KVPut{Key: "k", Value: []byte("v"), Lease: 1, TTLms: -1, HasCAS: true, CAS: 2, Now: 3}, "01016b017601010102" + "06"},
		// type 2; "ab"; prefix 1; cas flag 0; cas 300 → ac02
		{&KVDelete{Key: "ab", Prefix: true, CAS: 300}, "0202616201" + "00ac02"},
		// type 3; ttl 64 → zigzag 128 → 8001; now 0
		{&LeaseGrant{TTLms: 64}, "03800100"},
		{&LeaseRevoke{ID: 1}, "0501"},
		{&Expire{Now: -2}, "0603"},
		{&QueueAck{Queue: "q", ID: 5, Consumer: "c"}, "0901710501" + "63"},
		{&LockRelease{Name: "l", Owner: "o"}, "0c016c016f"},
		{&NodeRemove{Name: "n"}, "0e016e"},
		{&BlueprintDelete{Name: "b"}, "1001" + "62"},
		// type 18; one command; its entry length 2; LeaseRevoke{1}
		{&Batch{Cmds: []Command{&LeaseRevoke{ID: 1}}}, "12" + "01" + "02" + "0501"},
		// type 37; origin 1; seq 2; its command's entry length 2; LeaseRevoke{1}
		{&Forwarded{Origin: 1, Seq: 2, Cmd: &LeaseRevoke{ID: 1}}, "25" + "01" + "02" + "02" + "0501"},
		{&ClusterInit{ClusterID: "c", Key: []byte{1, 2}}, "110163020102"},
		// Labels sorted by key: a=1, b=2.
		{&NodeUpsert{Node: Node{Name: "n", Labels: map[string]string{"b": "2", "a": "1"}}, Now: 1},
			"0d016e" + "0000000000" + "00000000" + "02016101310162" + "0132" + "0000" + "00" + "02"},
		{&BlueprintPut{Spec: Blueprint{Name: "x"}, Sealed: []byte{9}}, "0f" + "3e" + hex.EncodeToString([]byte(`{"name":"x","unit":"","resources":{"cpu_mhz":0,"memory_mb":0}}`)) + "0109" + "00" + "00"},
		// Fleets and ships. type 19; spec JSON (68 bytes: 0x44); now 1 → 2
		{&FleetPut{Spec: Fleet{Name: "f", Replicas: 1, Versions: []FleetVersion{{Blueprint: "b", Version: 2}}}, Now: 1},
			"13" + "44" + hex.EncodeToString([]byte(`{"name":"f","replicas":1,"versions":[{"blueprint":"b","version":2}]}`)) + "02"},
		{&FleetDelete{Name: "f", Now: 1}, "14" + "0166" + "02"},
		// replicas 5 → 0a; now -1 → 01
		{&FleetScale{Name: "f", Replicas: 5, Now: -1}, "15" + "0166" + "0a" + "01"},
		// fleet, blueprint, version 2 → 04, count 3 → 06, now 1 → 02
		{&ShipCreate{Fleet: "f", Blueprint: "b", Version: 2, Count: 3, Now: 1}, "16" + "0166" + "0162" + "04" + "06" + "02"},
		// one place: ship, node, one port 300 (uvarint ac02); one pending; now
		{&ShipPlace{Places: []Place{{Ship: "s", Node: "n", Ports: []int{300}}}, Pending: []Pending{{Ship: "t", Reason: "r"}}, Now: 1},
			"17" + "01" + "0173" + "016e" + "01" + "ac02" + "01" + "0174" + "0172" + "02"},
		{&ShipStop{Ships: []string{"a", "b"}, Why: "user", Now: 1}, "18" + "02" + "0161" + "0162" + "04" + hex.EncodeToString([]byte("user")) + "00" + "02"},
		{&ShipReport{Node: "n", Reports: []Report{{Ship: "s", State: "ready"}}, Now: 1},
			"19" + "016e" + "01" + "0173" + "05" + hex.EncodeToString([]byte("ready")) + "00" + "02"},
		{&ShipLost{Node: "n", Reason: "r", Now: 2}, "1a" + "016e" + "0172" + "04"},
		{&ShipPurge{Ships: []string{"s"}}, "1b" + "01" + "0173"},
		{&NodeDrain{Name: "n", Enable: true, Now: 1}, "1c" + "016e" + "01" + "02"},
		{&NodeReport{Name: "n", PortsRange: "1-2", HostPorts: []int{1, 300}, Now: 1}, "1d" + "016e" + "03" + hex.EncodeToString([]byte("1-2")) + "02" + "01" + "ac02" + "02"},
		// one request: fleet, selector {a: b}, strategy "", no labels; now
		{&shipAllocate1{ShipAllocate{Requests: []AllocRequest{{Fleet: "f", Selector: map[string]string{"a": "b"}}}, Now: 1}},
			"20" + "01" + "0166" + "01" + "0161" + "0162" + "00" + "00" + "02"},
		// the same with request ID "r", as type 36
		{&ShipAllocate{Requests: []AllocRequest{{Fleet: "f", Selector: map[string]string{"a": "b"}, RequestID: "r"}}, Now: 1},
			"24" + "01" + "0166" + "01" + "0161" + "0162" + "00" + "00" + "0172" + "02"},
		// ship, node, op, key, value, seconds 5 → 0a, now
		{&ShipSDK{Ship: "s", Node: "n", Op: "label", Key: "k", Value: "v", Seconds: 5, Now: 1},
			"21" + "0173" + "016e" + "05" + hex.EncodeToString([]byte("label")) + "016b" + "0176" + "0a" + "02"},
	} {
		if got := hex.EncodeToString(Encode(tc.c)); got != tc.hex {
			t.Errorf("%T:\n got  %s\n want %s", tc.c, got, tc.hex)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	bad := map[string][]byte{
		"empty":                       {},
		"nil":                         nil,
		"bool 2":                      {byte(CmdKVDelete), 1, 'k', 2, 0, 0},
		"bool 0xff":                   {byte(CmdKVDelete), 1, 'k', 0, 0xff, 0},
		"uvarint overflow":            append([]byte{byte(CmdLeaseRevoke)}, bytes.Repeat([]byte{0xff}, 10)...),
		"uvarint unterminated":        {byte(CmdLeaseRevoke), 0x80},
		"length past end":             {byte(CmdNodeRemove), 5, 'a', 'b'},
		"huge length":                 {byte(CmdNodeRemove), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		"map count past end":          {byte(CmdNodeUpsert), 1, 'n', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x7f},
		"blueprint spec not JSON":     rawBlueprintPut("{"),
		"blueprint spec empty":        rawBlueprintPut(""),
		"blueprint spec wrong types":  rawBlueprintPut(`{"name":true}`),
		"blueprint bad duration":      rawBlueprintPut(`{"health":{"interval":"soon"}}`),
		"blueprint duration overflow": rawBlueprintPut(`{"health":{"interval":1e300}}`),
	}
	for typ, mk := range commandTable {
		if mk == nil {
			bad["unknown type "+hex.EncodeToString([]byte{byte(typ)})] = []byte{byte(typ), 0, 0, 0, 0}
		}
	}
	for _, c := range append(sampleCommands(), zeroCommands()...) {
		b := Encode(c)
		name := reflect.TypeOf(c).Elem().Name()
		// Every strict prefix is a truncated body.
		for i := 1; i < len(b); i++ {
			bad[name+" truncated to "+strconv.Itoa(i)] = b[:i]
		}
		bad[name+" trailing byte"] = append(bytes.Clone(b), 0)
		bad[name+" trailing bytes"] = append(bytes.Clone(b), 1, 2, 3)
	}
	for name, b := range bad {
		if c, err := Decode(b); err == nil {
			t.Errorf("%s: Decode(%x) = %#v, want an error", name, b, c)
		} else if c != nil {
			t.Errorf("%s: Decode returned both %#v and %v", name, c, err)
		}
	}
}

// rawBlueprintPut encodes a BlueprintPut entry around an arbitrary spec.
func rawBlueprintPut(spec string) []byte {
	e := encoder{b: []byte{byte(CmdBlueprintPut)}}
	e.str(spec)
	e.bytes(nil)
	e.bytes(nil)
	e.varint(0)
	return e.b
}

func TestDecodeCopiesItsInput(t *testing.T) {
	b := Encode(&KVPut{Key: "key", Value: []byte("value")})
	c, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'X'
	}
	if p := c.(*KVPut); p.Key != "key" || string(p.Value) != "value" {
		t.Fatalf("decoded command aliases the entry: %+v", p)
	}
}

// TestStamp checks that every command with a Now field takes the leader's
// clock from Stamp (a command that forgot would apply at time 0), and that
// Stamp changes nothing else.
func TestStamp(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_123)
	for _, c := range sampleCommands() {
		switch c.(type) {
		case *Batch, *Forwarded:
			continue // TestBatchStampsItsCommands, TestForwardedStampsItsCommand
		}
		before := Encode(c)
		Stamp(c, now)
		v := reflect.ValueOf(c).Elem()
		f := v.FieldByName("Now")
		if f.IsValid() {
			if f.Int() != now.UnixMilli() {
				t.Errorf("%T: Now = %d after Stamp", c, f.Int())
			}
			f.SetInt(0)
			c2, _ := Decode(before)
			reflect.ValueOf(c2).Elem().FieldByName("Now").SetInt(0)
			if !bytes.Equal(Encode(c), Encode(c2)) {
				t.Errorf("%T: Stamp changed more than Now", c)
			}
		} else if !bytes.Equal(Encode(c), before) {
			t.Errorf("%T has no clock but Stamp changed it", c)
		}
	}
}
