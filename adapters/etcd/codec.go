package etcd

import (
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the fallback codec
	"google.golang.org/grpc/mem"
)

// gogoCodec marshals etcd's messages with the code generated for them
// (gogo/protobuf's Size, MarshalToSizedBuffer and Unmarshal) rather than
// through protobuf reflection, which is how grpc's default codec reaches
// them. The bytes on the wire are the same. Any other message goes to the
// default codec.
type gogoCodec struct{ fallback encoding.CodecV2 }

// gogoMessage is a message with gogo/protobuf's generated code. Its
// Unmarshal copies what it keeps, so the buffer may be reused after it.
type gogoMessage interface {
	Size() int
	MarshalToSizedBuffer([]byte) (int, error)
	Unmarshal([]byte) error
}

func newGogoCodec() gogoCodec { return gogoCodec{fallback: encoding.GetCodecV2("proto")} }

func (c gogoCodec) Name() string { return "proto" }

func (c gogoCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(gogoMessage)
	if !ok {
		return c.fallback.Marshal(v)
	}
	size := m.Size()
	if mem.IsBelowBufferPoolingThreshold(size) {
		buf := make([]byte, size)
		n, err := m.MarshalToSizedBuffer(buf)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(buf[size-n:])}, nil
	}
	pool := mem.DefaultBufferPool()
	buf := pool.Get(size)
	n, err := m.MarshalToSizedBuffer(*buf)
	if err != nil {
		pool.Put(buf)
		return nil, err
	}
	*buf = (*buf)[size-n:]
	return mem.BufferSlice{mem.NewBuffer(buf, pool)}, nil
}

func (c gogoCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(gogoMessage)
	if !ok {
		return c.fallback.Unmarshal(data, v)
	}
	if len(data) == 1 {
		return m.Unmarshal(data[0].ReadOnlyData())
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return m.Unmarshal(buf.ReadOnlyData())
}
