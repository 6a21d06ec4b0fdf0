package journal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"stash.dev/redis/runner/resp"
)

// MaxKeptArg is the length up to which CommandReader keeps an argument that it does not keep
// all of (the command name and the arguments that say what a stream command is: SELECT's db,
// REPLCONF's subcommand).
const MaxKeptArg = 64

// CommandReader reads the commands of a replication stream: RESP arrays of bulk strings, which
// is all a source sends after the RDB. It passes their raw bytes on unchanged, so that the bytes
// written are exactly the bytes of the stream and the offset of the stream is what was read.
type CommandReader struct {
	br   *bufio.Reader
	hdr  []byte
	n    int
	args [][]byte
	buf  []byte
}

// NewCommandReader reads commands from br.
func NewCommandReader(br *bufio.Reader) *CommandReader { return &CommandReader{br: br} }

// Command is a command read by CommandReader; Args are valid until the next read.
type Command struct {
	// Args holds the arguments kept: all of them, or only the first few short ones (see Next).
	Args [][]byte
	// Size is the number of raw bytes of the command in the stream.
	Size int64
}

// Is reports whether the command's name is name (case-insensitive).
func (c Command) Is(name string) bool {
	return len(c.Args) > 0 && bytes.EqualFold(c.Args[0], []byte(name))
}

// ReadHeader waits for the next command and reads its array header. It returns io.EOF when the
// stream ends cleanly between commands.
func (cr *CommandReader) ReadHeader() error {
	line, err := cr.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			err = fmt.Errorf("%w: command header too long", resp.ErrProtocol)
		}
		return err
	}
	if len(line) < 4 || line[0] != '*' || line[len(line)-2] != '\r' {
		return fmt.Errorf("%w: expected a command (RESP array), got %q", resp.ErrProtocol, truncate(line))
	}
	n, err := resp.ParseInt(line[1 : len(line)-2])
	if err != nil || n < 1 || n > 1<<20 {
		return fmt.Errorf("%w: bad command header %q", resp.ErrProtocol, truncate(line))
	}
	cr.hdr = append(cr.hdr[:0], line...)
	cr.n = int(n)
	return nil
}

// ReadBody reads the arguments of the command whose header ReadHeader read, writing the raw
// bytes of the whole command (header included) to w if w is not nil. With all, every argument
// is kept in Command.Args (memory: the command's size); otherwise only the first three, and those
// only up to MaxKeptArg bytes (a longer one is kept empty), and the rest are streamed through.
func (cr *CommandReader) ReadBody(w io.Writer, all bool) (Command, error) {
	c := Command{Size: int64(len(cr.hdr))}
	if w != nil {
		if _, err := w.Write(cr.hdr); err != nil {
			return c, err
		}
	}
	cr.buf = cr.buf[:0]
	type span struct{ from, to int }
	var spans [8]span
	kept := spans[:0]
	for i := range cr.n {
		line, err := cr.br.ReadSlice('\n')
		if err != nil {
			return c, noEOF(err)
		}
		if len(line) < 4 || line[0] != '$' || line[len(line)-2] != '\r' {
			return c, fmt.Errorf("%w: expected a bulk string argument, got %q", resp.ErrProtocol, truncate(line))
		}
		n, err := resp.ParseInt(line[1 : len(line)-2])
		if err != nil || n < 0 {
			return c, fmt.Errorf("%w: bad argument header %q", resp.ErrProtocol, truncate(line))
		}
		c.Size += int64(len(line)) + n + 2
		if w != nil {
			if _, err := w.Write(line); err != nil {
				return c, err
			}
		}
		keep := all || (i < 3 && n <= MaxKeptArg)
		from := len(cr.buf)
		if err := cr.copyBulk(w, n, keep); err != nil {
			return c, err
		}
		if all || i < 3 {
			if !keep {
				from = len(cr.buf)
			}
			kept = append(kept, span{from, len(cr.buf)})
		}
	}
	cr.args = cr.args[:0]
	for _, s := range kept {
		cr.args = append(cr.args, cr.buf[s.from:s.to:s.to])
	}
	c.Args = cr.args
	return c, nil
}

// copyBulk reads n data bytes and their CRLF, writing them to w and, with keep, appending the
// data to cr.buf. It reads through the bufio.Reader's buffer, so a large argument costs no
// allocation.
func (cr *CommandReader) copyBulk(w io.Writer, n int64, keep bool) error {
	for left := n; left > 0; {
		p, err := cr.br.Peek(int(min(left, int64(cr.br.Size()))))
		if len(p) == 0 {
			return noEOF(err)
		}
		if w != nil {
			if _, err := w.Write(p); err != nil {
				return err
			}
		}
		if keep {
			cr.buf = append(cr.buf, p...)
		}
		_, _ = cr.br.Discard(len(p))
		left -= int64(len(p))
	}
	crlf, err := cr.br.Peek(2)
	if err != nil {
		return noEOF(err)
	}
	if crlf[0] != '\r' || crlf[1] != '\n' {
		return fmt.Errorf("%w: argument not terminated by CRLF", resp.ErrProtocol)
	}
	if w != nil {
		if _, err := w.Write(crlf); err != nil {
			return err
		}
	}
	_, _ = cr.br.Discard(2)
	return nil
}

func truncate(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
