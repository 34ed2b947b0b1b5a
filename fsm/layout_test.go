package fsm

import (
	"bytes"
	"testing"

	"go.etcd.io/bbolt"
)

// A snapshot can be intact (its checksum matches) and still not be one
// Armada wrote. CheckSnapshot must refuse every shape Apply cannot handle,
// or a restore would make every node panic at the same entry.
func TestCheckSnapshotRefusesForeignLayouts(t *testing.T) {
	cases := map[string]func(tx *bbolt.Tx) error{
		"nested bucket in kv": func(tx *bbolt.Tx) error {
			_, err := tx.Bucket(bKV).CreateBucket([]byte("boom"))
			return err
		},
		"value where a queue should be": func(tx *bbolt.Tx) error { return tx.Bucket(bQueues).Put([]byte("q"), []byte("x")) },
		"undecodable kv entry":          func(tx *bbolt.Tx) error { return tx.Bucket(bKV).Put([]byte("k"), []byte{0xff}) },
		"unknown top-level bucket": func(tx *bbolt.Tx) error {
			_, err := tx.CreateBucket([]byte("mystery"))
			return err
		},
		"bad node record":    func(tx *bbolt.Tx) error { return tx.Bucket(bNodes).Put([]byte("n"), []byte("{")) },
		"no applied index":   func(tx *bbolt.Tx) error { return tx.Bucket(bMeta).Delete(kIndex) },
		"bad lease expiry":   func(tx *bbolt.Tx) error { return tx.Bucket(bLeaseExp).Put([]byte("short"), nil) },
		"queue nested twice": nestTwice,
		"bad fleet record":   func(tx *bbolt.Tx) error { return tx.Bucket(bFleets).Put([]byte("f"), []byte("[")) },
		"bad ship record":    func(tx *bbolt.Tx) error { return tx.Bucket(bShips).Put([]byte("s"), []byte(`{"id":`)) },
		"nested bucket in ships": func(tx *bbolt.Tx) error {
			_, err := tx.Bucket(bShips).CreateBucket([]byte("boom"))
			return err
		},
		"nested bucket in node_ships": func(tx *bbolt.Tx) error {
			_, err := tx.Bucket(bNodeShips).CreateBucket([]byte("boom"))
			return err
		},
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			src := openState(t)
			src.Apply(1, Encode(&KVPut{Key: "a", Value: []byte("1")}))
			src.Apply(2, Encode(&QueuePush{Queue: "q0", Data: []byte("x")}))
			src.flush()
			if err := src.db.Update(corrupt); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			sn, err := src.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			sn.WriteTo(&buf)
			sn.Release()
			if _, err := CheckSnapshot(bytes.NewReader(buf.Bytes()), t.TempDir()); err == nil {
				t.Fatal("CheckSnapshot accepted it")
			}
		})
	}
}

func nestTwice(tx *bbolt.Tx) error {
	_, err := tx.Bucket(bQueues).Bucket([]byte("q0")).CreateBucket([]byte("deeper"))
	return err
}

func TestCheckSnapshotAcceptsARealOne(t *testing.T) {
	src := openState(t)
	src.Apply(1, Encode(&KVPut{Key: "a", Value: []byte("1"), TTLms: 1000, Now: 1}))
	src.Apply(2, Encode(&QueuePush{Queue: "q0", Data: []byte("x")}))
	src.Apply(3, Encode(&LockAcquire{Name: "l", Owner: "o", TTLms: 10, Now: 1}))
	src.Apply(4, Encode(&NodeUpsert{Node: Node{Name: "n1", Status: NodeAlive}}))
	// Fleets, ships and their index buckets (whose values are empty).
	var ships []*Ship
	for i, c := range gameWorld() {
		r := src.Apply(uint64(5+i), Encode(c))
		if r.Err != nil {
			t.Fatalf("setup %T: %v", c, r.Err)
		}
		ships = append(ships, r.Ships...)
	}
	if r := src.Apply(src.Index()+1, Encode(placeCmd(place(ships[0].ID, "n1", 20000)))); r.Count != 1 {
		t.Fatalf("place: %s", jsonString(r))
	}
	var buf bytes.Buffer
	sn, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sn.WriteTo(&buf)
	sn.Release()
	index, err := CheckSnapshot(bytes.NewReader(buf.Bytes()), t.TempDir())
	if err != nil || index != src.Index() {
		t.Fatalf("CheckSnapshot: %d %v", index, err)
	}
}
