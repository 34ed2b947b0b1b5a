package zk

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// MaxPacketSize is the largest frame payload accepted or produced, in bytes:
// ZooKeeper's default jute.maxbuffer (0xfffff). Every length read from the
// wire is also bounded by it.
const MaxPacketSize = 0xfffff

// Error is the type of this package's sentinel errors; being a string type
// they are constants.
type Error string

func (e Error) Error() string { return string(e) }

// Decoding and framing errors. Errors returned by this package wrap one of
// these (test with errors.Is).
const (
	// ErrTruncated means a record ended before all of its fields were read.
	ErrTruncated Error = "truncated record"
	// ErrBadLength means a length or count was negative (other than -1 for null).
	ErrBadLength Error = "invalid length"
	// ErrTooLarge means a length, count or frame exceeded MaxPacketSize.
	ErrTooLarge Error = "exceeds max packet size"
	// ErrUnknownOp means an op code that has no record here, or that is not
	// allowed where it appeared (e.g. getData inside a write multi).
	ErrUnknownOp Error = "unknown op"
)

// Minimum encoded sizes, used to bound vector counts before allocating.
const (
	sizeInt32      = 4
	sizeInt64      = 8
	sizeBool       = 1
	minSizeString  = sizeInt32                // length only
	minSizeACL     = sizeInt32 + 2*sizeInt32  // perms + two empty strings
	minSizeHeader  = sizeInt32 + sizeBool + 4 // MultiHeader
	frameHeaderLen = sizeInt32                // frame length prefix
	readChunk      = 4096                     // initial frame buffer for large frames
	minSizeClient  = 2 * minSizeString        // ClientInfo
	nullLength     = -1                       // jute's length for null
)

// Record is a jute record: it appends its fields to an Encoder and reads
// them back from a Decoder. Decode errors are recorded in the Decoder.
type Record interface {
	Encode(e *Encoder)
	Decode(d *Decoder)
}

// Encoder appends jute-encoded values to a byte slice. It never fails; size
// limits are enforced when a frame is finished (AppendFrame).
type Encoder struct {
	buf []byte
}

// NewEncoder returns an Encoder that appends to buf.
func NewEncoder(buf []byte) *Encoder { return &Encoder{buf: buf} }

// Bytes returns the encoded bytes.
func (e *Encoder) Bytes() []byte { return e.buf }

// Len returns the number of encoded bytes.
func (e *Encoder) Len() int { return len(e.buf) }

// WriteInt32 appends a big-endian int32.
func (e *Encoder) WriteInt32(v int32) { e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(v)) }

// WriteInt64 appends a big-endian int64.
func (e *Encoder) WriteInt64(v int64) { e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(v)) }

// WriteBool appends a boolean as one byte (1 or 0).
func (e *Encoder) WriteBool(v bool) {
	if v {
		e.buf = append(e.buf, 1)
	} else {
		e.buf = append(e.buf, 0)
	}
}

// WriteBuffer appends a length-prefixed buffer; nil is written as null (-1).
func (e *Encoder) WriteBuffer(b []byte) {
	if b == nil {
		e.WriteInt32(nullLength)
		return
	}
	e.WriteInt32(int32(len(b)))
	e.buf = append(e.buf, b...)
}

// WriteString appends a length-prefixed UTF-8 string.
func (e *Encoder) WriteString(s string) {
	e.WriteInt32(int32(len(s)))
	e.buf = append(e.buf, s...)
}

// WriteVectorLen appends a vector count; a nil vector is written as -1.
func (e *Encoder) WriteVectorLen(n int, isNil bool) {
	if isNil {
		e.WriteInt32(nullLength)
		return
	}
	e.WriteInt32(int32(n))
}

// WriteStrings appends a vector<ustring>; nil is written as null.
func (e *Encoder) WriteStrings(v []string) {
	e.WriteVectorLen(len(v), v == nil)
	for _, s := range v {
		e.WriteString(s)
	}
}

// Write appends records in order.
func (e *Encoder) Write(rs ...Record) {
	for _, r := range rs {
		if r != nil {
			r.Encode(e)
		}
	}
}

// Decoder reads jute values from a byte slice. The first error is sticky:
// after it every read returns a zero value, and Err reports it.
type Decoder struct {
	buf []byte
	off int
	err error
}

// NewDecoder returns a Decoder reading b. It does not retain b beyond the
// decode: buffers are copied out.
func NewDecoder(b []byte) *Decoder { return &Decoder{buf: b} }

// Err returns the first error met, or nil.
func (d *Decoder) Err() error { return d.err }

// Offset returns the number of bytes consumed.
func (d *Decoder) Offset() int { return d.off }

// Remaining returns the number of unread bytes (0 after an error).
func (d *Decoder) Remaining() int {
	if d.err != nil {
		return 0
	}
	return len(d.buf) - d.off
}

// Fail records err (wrapped with the current offset) unless an error is
// already recorded. Record decoders use it for semantic errors.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = fmt.Errorf("at byte %d: %w", d.off, err)
	}
}

func (d *Decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.buf)-d.off {
		d.Fail(ErrTruncated)
		return nil
	}
	b := d.buf[d.off : d.off+n]
	d.off += n
	return b
}

// ReadInt32 reads a big-endian int32.
func (d *Decoder) ReadInt32() int32 {
	b := d.take(sizeInt32)
	if b == nil {
		return 0
	}
	return int32(binary.BigEndian.Uint32(b))
}

// ReadInt64 reads a big-endian int64.
func (d *Decoder) ReadInt64() int64 {
	b := d.take(sizeInt64)
	if b == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

// ReadBool reads a one-byte boolean; like Java's readBoolean any non-zero
// byte is true.
func (d *Decoder) ReadBool() bool {
	b := d.take(sizeBool)
	return b != nil && b[0] != 0
}

// readLen reads a length or count and checks it: -1 is null, other negative
// values are errors, and n*minItem must fit in the remaining bytes and in
// MaxPacketSize. It returns -1 for null.
func (d *Decoder) readLen(minItem int) int {
	n := d.ReadInt32()
	if d.err != nil {
		return 0
	}
	switch {
	case n == nullLength:
		return nullLength
	case n < 0:
		d.Fail(fmt.Errorf("length %d: %w", n, ErrBadLength))
		return 0
	case int64(n) > MaxPacketSize:
		d.Fail(fmt.Errorf("length %d: %w", n, ErrTooLarge))
		return 0
	case int64(n)*int64(minItem) > int64(len(d.buf)-d.off):
		d.Fail(fmt.Errorf("length %d: %w", n, ErrTruncated))
		return 0
	}
	return int(n)
}

// ReadBuffer reads a length-prefixed buffer; null decodes as nil and an
// empty buffer as a non-nil empty slice. The bytes are copied.
func (d *Decoder) ReadBuffer() []byte {
	n := d.readLen(1)
	if d.err != nil || n == nullLength {
		return nil
	}
	b := d.take(n)
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, n), b...)
}

// ReadString reads a length-prefixed string; null decodes as "".
func (d *Decoder) ReadString() string {
	n := d.readLen(1)
	if d.err != nil || n == nullLength {
		return ""
	}
	return string(d.take(n))
}

// ReadVectorLen reads a vector count whose items each take at least minItem
// bytes (minItem >= 1). It returns -1 for a null vector; the count is
// checked against the remaining bytes, so allocating it is safe.
func (d *Decoder) ReadVectorLen(minItem int) int {
	return d.readLen(max(minItem, 1))
}

// ReadStrings reads a vector<ustring>; null decodes as nil.
func (d *Decoder) ReadStrings() []string {
	n := d.ReadVectorLen(minSizeString)
	if d.err != nil || n == nullLength {
		return nil
	}
	v := make([]string, 0, n)
	for range n {
		s := d.ReadString()
		if d.err != nil {
			return nil
		}
		v = append(v, s)
	}
	return v
}

// Read decodes records in order.
func (d *Decoder) Read(rs ...Record) {
	for _, r := range rs {
		if d.err != nil {
			return
		}
		r.Decode(d)
	}
}

// Marshal returns the jute encoding of the records, without a frame header.
func Marshal(rs ...Record) []byte {
	e := NewEncoder(nil)
	e.Write(rs...)
	return e.Bytes()
}

// Unmarshal decodes the records from b in order and returns the number of
// bytes consumed. Bytes after the last record are not an error.
func Unmarshal(b []byte, rs ...Record) (int, error) {
	n, err := unmarshal(b, rs...)
	if err != nil {
		return 0, fmt.Errorf("zk: decode: %w", err)
	}
	return n, nil
}

func unmarshal(b []byte, rs ...Record) (int, error) {
	d := NewDecoder(b)
	d.Read(rs...)
	if err := d.Err(); err != nil {
		return 0, err
	}
	return d.Offset(), nil
}

// AppendFrame appends one frame (int32 length + the records' encoding) to
// dst. Nil records are skipped. If the payload exceeds MaxPacketSize it
// returns dst unchanged and an error wrapping ErrTooLarge.
func AppendFrame(dst []byte, rs ...Record) ([]byte, error) {
	start := len(dst)
	e := NewEncoder(append(dst, 0, 0, 0, 0))
	e.Write(rs...)
	out := e.Bytes()
	n := len(out) - start - frameHeaderLen
	if n > MaxPacketSize {
		return dst[:start], fmt.Errorf("zk: frame of %d bytes: %w", n, ErrTooLarge)
	}
	binary.BigEndian.PutUint32(out[start:], uint32(n))
	return out, nil
}

// FrameReader reads length-prefixed frames from a stream (usually a
// net.Conn). It buffers its input; use Peek for the first bytes of a
// connection (four-letter words) rather than reading the stream directly.
type FrameReader struct {
	r   *bufio.Reader
	hdr [frameHeaderLen]byte
}

// NewFrameReader returns a FrameReader on r. If r is already a
// *bufio.Reader it is used as is.
func NewFrameReader(r io.Reader) *FrameReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	return &FrameReader{r: br}
}

// Peek returns the next n bytes without consuming them.
func (fr *FrameReader) Peek(n int) ([]byte, error) { return fr.r.Peek(n) }

// ReadFrame reads one frame and returns its payload, a new slice the caller
// owns. A clean end of stream before a frame returns io.EOF; a stream that
// ends inside a frame returns io.ErrUnexpectedEOF. A length below zero or
// above MaxPacketSize is an error (the stream cannot be resynchronised
// after it). Memory is allocated as the payload arrives, so a peer that
// announces a large frame and sends little costs little.
func (fr *FrameReader) ReadFrame() ([]byte, error) {
	if _, err := io.ReadFull(fr.r, fr.hdr[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(fr.hdr[:]))
	if n < 0 {
		return nil, fmt.Errorf("zk: frame length %d: %w", n, ErrBadLength)
	}
	if n > MaxPacketSize {
		return nil, fmt.Errorf("zk: frame length %d: %w", n, ErrTooLarge)
	}
	size := int(n)
	buf := make([]byte, min(size, readChunk))
	if _, err := io.ReadFull(fr.r, buf); err != nil {
		return nil, unexpected(err)
	}
	for len(buf) < size {
		old := len(buf)
		grow := min(size-old, old)
		buf = slices.Grow(buf, grow)[:old+grow]
		if _, err := io.ReadFull(fr.r, buf[old:]); err != nil {
			return nil, unexpected(err)
		}
	}
	return buf, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// FourLetterWord reports whether b starts with one of ZooKeeper's
// four-letter admin commands (sent instead of a frame length on a fresh
// connection) and returns it.
func FourLetterWord(b []byte) (string, bool) {
	if len(b) < 4 {
		return "", false
	}
	switch w := string(b[:4]); w {
	case "ruok", "srvr", "mntr", "stat", "conf", "cons", "crst", "dump",
		"envi", "gtmk", "isro", "srst", "stmk", "wchc", "wchp", "wchs", "dirs":
		return w, true
	}
	return "", false
}
