package etcd

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The generated code writes what grpc's default codec writes, and reads it
// back, whether the bytes come in one buffer or several.
func TestGogoCodecMatchesTheDefault(t *testing.T) {
	c := newGogoCodec()
	def := encoding.GetCodecV2("proto")
	big := strings.Repeat("v", 64<<10) // above the pooling threshold
	for _, m := range []any{
		&pb.PutRequest{Key: []byte("k"), Value: []byte("v"), Lease: 7, PrevKv: true},
		&pb.RangeResponse{Header: &pb.ResponseHeader{Revision: 9, ClusterId: 1}, Count: 2,
			Kvs: []*mvccpb.KeyValue{{Key: []byte("a"), Value: []byte(big), ModRevision: 3}, {Key: []byte("b")}}},
		&pb.WatchResponse{Header: &pb.ResponseHeader{Revision: 4}, WatchId: 1, Events: []*mvccpb.Event{{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("x")}}}},
		&pb.PutRequest{},
		wrapperspb.String("not one of etcd's messages"),
	} {
		got, err := c.Marshal(m)
		if err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		want, err := def.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		gb, wb := got.Materialize(), want.Materialize()
		if !bytes.Equal(gb, wb) {
			t.Fatalf("%T: % x, the default codec writes % x", m, gb, wb)
		}
		for _, in := range []mem.BufferSlice{{mem.SliceBuffer(gb)}, split(gb)} {
			back := reflect.New(reflect.TypeOf(m).Elem()).Interface()
			if err := c.Unmarshal(in, back); err != nil {
				t.Fatalf("%T: %v", m, err)
			}
			again, _ := def.Marshal(back)
			if !bytes.Equal(again.Materialize(), wb) {
				t.Fatalf("%T does not read back", m)
			}
		}
		got.Free()
		want.Free()
	}
	if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer([]byte{0x0a, 0x05, 'k'})}, &pb.PutRequest{}); err == nil {
		t.Fatal("a cut-short message was read")
	}
}

// split cuts b into buffers of at most 3 bytes.
func split(b []byte) mem.BufferSlice {
	var out mem.BufferSlice
	for len(b) > 3 {
		out = append(out, mem.SliceBuffer(b[:3]))
		b = b[3:]
	}
	return append(out, mem.SliceBuffer(b))
}
