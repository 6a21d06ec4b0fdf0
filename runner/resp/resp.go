// Package resp encodes and decodes the subset of the Redis serialization protocol (RESP2) that the
// runner needs on its hot paths, without per-command allocations.
//
// go-redis is used for everything that is not hot; a backup of millions of keys, however, spends its
// time in DUMP/RESTORE round trips, where go-redis' per-command objects dominate. This package lets
// the dump and load code read payloads straight into reused buffers.
package resp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// Error is an error reply from the server (a line starting with '-').
type Error string

func (e Error) Error() string { return string(e) }

// ErrProtocol reports a reply that does not follow RESP.
var ErrProtocol = errors.New("redis protocol error")

// AppendArray appends an array header for n elements.
func AppendArray(b []byte, n int) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// AppendBulk appends a bulk string.
func AppendBulk(b []byte, s []byte) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendBulkString appends a bulk string given as a string.
func AppendBulkString(b []byte, s string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// AppendBulkInt appends an integer encoded as a bulk string, as commands take their arguments.
func AppendBulkInt(b []byte, v int64) []byte {
	var tmp [20]byte
	return AppendBulk(b, strconv.AppendInt(tmp[:0], v, 10))
}

// AppendCommand appends a command given as strings; for cold paths.
func AppendCommand(b []byte, args ...string) []byte {
	b = AppendArray(b, len(args))
	for _, a := range args {
		b = AppendBulkString(b, a)
	}
	return b
}

// Reader reads replies from a buffered connection.
type Reader struct {
	br *bufio.Reader
}

// NewReader returns a Reader on br.
func NewReader(br *bufio.Reader) *Reader { return &Reader{br: br} }

// line returns the next line without CRLF; it is valid until the next read.
func (r *Reader) line() ([]byte, error) {
	l, err := r.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: line too long", ErrProtocol)
		}
		return nil, err
	}
	if len(l) < 3 || l[len(l)-2] != '\r' {
		return nil, fmt.Errorf("%w: bad line %q", ErrProtocol, l)
	}
	return l[:len(l)-2], nil
}

// ParseInt parses a decimal integer without allocating.
func ParseInt(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, fmt.Errorf("%w: empty integer", ErrProtocol)
	}
	neg := false
	if b[0] == '-' {
		neg = true
		b = b[1:]
		if len(b) == 0 {
			return 0, fmt.Errorf("%w: bad integer", ErrProtocol)
		}
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%w: bad integer %q", ErrProtocol, b)
		}
		if v > (math.MaxInt64-9)/10 {
			return 0, fmt.Errorf("%w: integer %q out of range", ErrProtocol, b)
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, nil
}

// header reads a reply header and returns its type byte and the integer that follows it (for
// ':', '$' and '*'). Error replies are returned as Error; simple strings as type '+' with n = 0.
func (r *Reader) header() (byte, int64, error) {
	l, err := r.line()
	if err != nil {
		return 0, 0, err
	}
	switch l[0] {
	case '-':
		return '-', 0, Error(string(l[1:]))
	case '+':
		return '+', 0, nil
	case ':', '$', '*':
		n, err := ParseInt(l[1:])
		return l[0], n, err
	}
	return 0, 0, fmt.Errorf("%w: unexpected reply %q", ErrProtocol, l)
}

// ReadOK reads a status reply; an error reply is returned as Error.
func (r *Reader) ReadOK() error {
	t, _, err := r.header()
	if err != nil {
		return err
	}
	if t != '+' {
		return fmt.Errorf("%w: expected status reply, got %q", ErrProtocol, t)
	}
	return nil
}

// ReadStatus reads a status reply and returns its text; an error reply is returned as Error.
func (r *Reader) ReadStatus() (string, error) {
	l, err := r.line()
	if err != nil {
		return "", err
	}
	switch l[0] {
	case '+':
		return string(l[1:]), nil
	case '-':
		return "", Error(string(l[1:]))
	}
	return "", fmt.Errorf("%w: expected status reply, got %q", ErrProtocol, l)
}

// Buffered returns the buffered connection under r, for a protocol that leaves RESP (the RDB
// file of a replication transfer). What r has not consumed is still in it.
func (r *Reader) Buffered() *bufio.Reader { return r.br }

// ReadInt reads an integer reply.
func (r *Reader) ReadInt() (int64, error) {
	t, n, err := r.header()
	if err != nil {
		return 0, err
	}
	if t != ':' {
		return 0, fmt.Errorf("%w: expected integer reply, got %q", ErrProtocol, t)
	}
	return n, nil
}

// ReadArrayLen reads an array header and returns its length (-1 for a nil array).
func (r *Reader) ReadArrayLen() (int, error) {
	t, n, err := r.header()
	if err != nil {
		return 0, err
	}
	if t != '*' {
		return 0, fmt.Errorf("%w: expected array reply, got %q", ErrProtocol, t)
	}
	return int(n), nil
}

// ReadBulkLen reads a bulk string header and returns the length of the data that follows
// (-1 for a nil bulk string, after which nothing follows). The caller must then consume the
// data with ReadBulkData.
func (r *Reader) ReadBulkLen() (int, error) {
	t, n, err := r.header()
	if err != nil {
		return 0, err
	}
	if t != '$' {
		return 0, fmt.Errorf("%w: expected bulk reply, got %q", ErrProtocol, t)
	}
	return int(n), nil
}

// ReadBulkData reads the n data bytes announced by ReadBulkLen into dst[:n] and the trailing CRLF.
func (r *Reader) ReadBulkData(dst []byte) error {
	if _, err := io.ReadFull(r.br, dst); err != nil {
		return noEOF(err)
	}
	return r.bulkEnd()
}

// AppendBulkData reads the n data bytes announced by ReadBulkLen and the trailing CRLF and
// appends them to dst, growing it as the data arrives: memory follows what the input holds,
// not what its header claims (a length in a damaged or hostile stream can say anything).
func (r *Reader) AppendBulkData(dst []byte, n int) ([]byte, error) {
	const step = 1 << 20
	for n > 0 {
		c := min(n, step)
		l := len(dst)
		dst = slices.Grow(dst, c)[:l+c]
		if _, err := io.ReadFull(r.br, dst[l:]); err != nil {
			return dst[:l], noEOF(err)
		}
		n -= c
	}
	return dst, r.bulkEnd()
}

// DiscardBulkData drops the n data bytes announced by ReadBulkLen and the trailing CRLF.
func (r *Reader) DiscardBulkData(n int) error {
	if _, err := r.br.Discard(n); err != nil {
		return noEOF(err)
	}
	return r.bulkEnd()
}

// bulkEnd reads the CRLF that ends a bulk string's data. It reads byte by byte: a small array
// passed to io.ReadFull would escape and cost an allocation per bulk string.
func (r *Reader) bulkEnd() error {
	for _, want := range [2]byte{'\r', '\n'} {
		c, err := r.br.ReadByte()
		if err != nil {
			return noEOF(err)
		}
		if c != want {
			return fmt.Errorf("%w: bulk string not terminated by CRLF", ErrProtocol)
		}
	}
	return nil
}

// AppendBulkReply reads a bulk reply and appends its data to dst. isNil reports a nil reply.
func (r *Reader) AppendBulkReply(dst []byte) (out []byte, isNil bool, err error) {
	n, err := r.ReadBulkLen()
	if err != nil {
		return dst, false, err
	}
	if n < 0 {
		return dst, true, nil
	}
	if n > 64<<10 {
		out, err = r.AppendBulkData(dst, n)
		return out, false, err
	}
	dst = Grow(dst, n)
	if err := r.ReadBulkData(dst[len(dst) : len(dst)+n]); err != nil {
		return dst, false, err
	}
	return dst[:len(dst)+n], false, nil
}

// Discard reads and drops one complete reply of any type, including nested arrays.
func (r *Reader) Discard() error {
	t, n, err := r.header()
	if err != nil {
		return err
	}
	switch t {
	case '$':
		if n >= 0 {
			_, err = r.br.Discard(int(n) + 2)
			return noEOF(err)
		}
	case '*':
		for i := int64(0); i < n; i++ {
			if err := r.Discard(); err != nil {
				var re Error
				if errors.As(err, &re) {
					continue
				}
				return err
			}
		}
	}
	return nil
}

// Grow makes room for n more bytes in b without changing its length.
func Grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), 2*cap(b)+n)
	copy(nb, b)
	return nb
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
