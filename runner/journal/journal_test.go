package journal_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"stash.dev/redis/runner/crypt"
	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/resp"
	"stash.dev/redis/test/runnertest"
)

func openRepo(t *testing.T) (*repo.Repository, string) {
	t.Helper()
	dir := t.TempDir()
	return runnertest.OpenRepo(t, "file://"+dir, nil), dir
}

// stream is a replication stream as a source sends it, with the commands it holds.
func stream() ([]byte, [][]string) {
	big := strings.Repeat("v", 300<<10) // longer than a bufio.Reader's buffer
	cmds := [][]string{
		{"SELECT", "3"},
		{"SET", "k1", "v1", "PXAT", "4102444800000"},
		{"PING"},
		{"MULTI"},
		{"INCR", "counter"},
		{"SET", "big", big},
		{"EXEC"},
		{"REPLCONF", "GETACK", "*"},
		{"SELECT", "0"},
		{"DEL", "k1", ""},
	}
	var b []byte
	for _, c := range cmds {
		b = resp.AppendCommand(b, c...)
	}
	return b, cmds
}

// writeSegment writes raw as one segment starting at offset start, one command per
// BeginCommand, received a second apart from t0.
func writeSegment(t *testing.T, r *repo.Repository, chain string, start int64, raw []byte, t0 time.Time) journal.Manifest {
	t.Helper()
	w, err := journal.NewWriter(context.Background(), r, journal.Start{Chain: chain, ReplID: strings.Repeat("a", 40), Offset: start, DB: 5})
	if err != nil {
		t.Fatal(err)
	}
	cr := journal.NewCommandReader(bufio.NewReader(bytes.NewReader(raw)))
	for i := 0; ; i++ {
		err := cr.ReadHeader()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		w.BeginCommand(t0.Add(time.Duration(i) * time.Second))
		if _, err := cr.ReadBody(w, false); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Commit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSegmentRoundTrip: a segment stores the stream byte for byte; its manifest has the offsets,
// times, database, count and marks; the commands decode back to what was sent.
func TestSegmentRoundTrip(t *testing.T) {
	ctx := context.Background()
	r, _ := openRepo(t)
	raw, cmds := stream()
	t0 := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	m := writeSegment(t, r, "20261206T100000Z-abcdef", 1000, raw, t0)

	segs, err := journal.List(ctx, r, "20261206T100000Z-abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) != 1 || !cmp.Equal(segs[0], m) {
		t.Fatalf("listed %+v, committed %+v", segs, m)
	}
	if m.StartOffset != 1000 || m.EndOffset != 1000+int64(len(raw)) || m.RawBytes != int64(len(raw)) ||
		m.Commands != int64(len(cmds)) || m.DB != 5 || !m.FirstTime.Equal(t0) || !m.LastTime.Equal(t0.Add(9*time.Second)) ||
		len(m.Marks) != len(cmds) || m.Marks[1].Offset != 1000+int64(len(resp.AppendCommand(nil, cmds[0]...))) || len(m.SHA256) != 64 {
		t.Fatalf("manifest %+v", m)
	}
	if chains, err := journal.Chains(ctx, r); err != nil || !cmp.Equal(chains, []string{"20261206T100000Z-abcdef"}) {
		t.Fatalf("chains %v %v", chains, err)
	}

	jr, err := journal.Open(ctx, r, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(jr)
	jr.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatalf("read %d bytes, wrote %d", len(got), len(raw))
	}
	cr := journal.NewCommandReader(bufio.NewReader(bytes.NewReader(got)))
	for i, want := range cmds {
		if err := cr.ReadHeader(); err != nil {
			t.Fatal(err)
		}
		c, err := cr.ReadBody(nil, true)
		if err != nil {
			t.Fatal(err)
		}
		var args []string
		for _, a := range c.Args {
			args = append(args, string(a))
		}
		if !cmp.Equal(args, want) || c.Size != int64(len(resp.AppendCommand(nil, want...))) {
			t.Fatalf("command %d: %.60q (%d bytes), want %.60q", i, args, c.Size, want)
		}
	}
	if err := cr.ReadHeader(); err != io.EOF {
		t.Fatalf("after the last command: %v", err)
	}
}

// TestCommandReaderKeepsShortArgs: without all, the reader keeps the first three arguments up
// to MaxKeptArg bytes and passes every byte through.
func TestCommandReaderKeepsShortArgs(t *testing.T) {
	long := strings.Repeat("x", journal.MaxKeptArg+1)
	raw := resp.AppendCommand(nil, "set", long, "v", "EX", "10")
	cr := journal.NewCommandReader(bufio.NewReader(bytes.NewReader(raw)))
	if err := cr.ReadHeader(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	c, err := cr.ReadBody(&out, false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), raw) || len(c.Args) != 3 || !c.Is("SET") || len(c.Args[1]) != 0 || string(c.Args[2]) != "v" {
		t.Fatalf("args %q, passed %d of %d bytes", c.Args, out.Len(), len(raw))
	}
}

// TestCommandReaderRefusesBadStreams: a stream cut inside a command, or that is not RESP
// commands, is an error, never a silently shorter journal.
func TestCommandReaderRefusesBadStreams(t *testing.T) {
	full := resp.AppendCommand(nil, "SET", "k", "value")
	for name, tc := range map[string]struct {
		raw  []byte
		want error
	}{
		"cut in an argument": {full[:len(full)-3], io.ErrUnexpectedEOF},
		"cut after header":   {full[:4], io.ErrUnexpectedEOF},
		"inline command":     {[]byte("PING\r\n"), resp.ErrProtocol},
		"no CRLF after data": {[]byte("*1\r\n$4\r\nPINGxx"), resp.ErrProtocol},
		"negative count":     {[]byte("*-1\r\n"), resp.ErrProtocol},
	} {
		t.Run(name, func(t *testing.T) {
			cr := journal.NewCommandReader(bufio.NewReader(bytes.NewReader(tc.raw)))
			err := cr.ReadHeader()
			if err == nil {
				_, err = cr.ReadBody(io.Discard, false)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestAbortedSegmentDoesNotExist: a segment whose writer never committed (the follower died)
// lists as nothing, and neither does data without a manifest.
func TestAbortedSegmentDoesNotExist(t *testing.T) {
	ctx := context.Background()
	r, _ := openRepo(t)
	w, err := journal.NewWriter(ctx, r, journal.Start{Chain: "c1", Offset: 7})
	if err != nil {
		t.Fatal(err)
	}
	w.BeginCommand(time.Now())
	if _, err := w.Write(resp.AppendCommand(nil, "SET", "a", "b")); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	segs, err := journal.List(ctx, r, "c1")
	if err != nil || len(segs) != 0 {
		t.Fatalf("aborted segment listed: %v %v", segs, err)
	}
}

// TestTamperedSegmentIsRefused: a flipped byte in a segment's data, an altered manifest, or a
// manifest moved to another segment's name are refused with crypt.ErrIntegrity and the
// segment's name.
func TestTamperedSegmentIsRefused(t *testing.T) {
	ctx := context.Background()
	raw, _ := stream()
	t0 := time.Now().UTC()

	t.Run("data", func(t *testing.T) {
		r, dir := openRepo(t)
		m := writeSegment(t, r, "c1", 0, raw, t0)
		path := filepath.Join(dir, "journal", "c1", "00000000000000000000.data")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/2] ^= 1
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		jr, err := journal.Open(ctx, r, m)
		if err == nil {
			_, err = io.Copy(io.Discard, jr)
			jr.Close()
		}
		if !errors.Is(err, crypt.ErrIntegrity) || !strings.Contains(err.Error(), "journal segment c1/0") {
			t.Fatalf("flipped byte: %v", err)
		}
	})
	t.Run("manifest", func(t *testing.T) {
		r, dir := openRepo(t)
		writeSegment(t, r, "c1", 0, raw, t0)
		path := filepath.Join(dir, "journal", "c1", "00000000000000000000.json")
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.Replace(b, []byte(`"hmac":"`), []byte(`"hmac":"AA`), 1)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := journal.List(ctx, r, "c1"); !errors.Is(err, crypt.ErrIntegrity) {
			t.Fatalf("altered manifest: %v", err)
		}
	})
	t.Run("moved manifest", func(t *testing.T) {
		r, dir := openRepo(t)
		writeSegment(t, r, "c1", 0, raw, t0)
		d := filepath.Join(dir, "journal", "c1")
		for _, ext := range []string{".data", ".json"} {
			if err := os.Rename(filepath.Join(d, "00000000000000000000"+ext), filepath.Join(d, "00000000000000000099"+ext)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := journal.List(ctx, r, "c1"); !errors.Is(err, crypt.ErrIntegrity) {
			t.Fatalf("moved segment: %v", err)
		}
	})
}

// TestCheckContiguous: segments must continue each other and the base exactly.
func TestCheckContiguous(t *testing.T) {
	seg := func(a, b int64) journal.Manifest {
		return journal.Manifest{Chain: "c", StartOffset: a, EndOffset: b}
	}
	if err := journal.CheckContiguous(10, []journal.Manifest{seg(10, 20), seg(20, 25)}); err != nil {
		t.Fatal(err)
	}
	for name, segs := range map[string][]journal.Manifest{
		"gap after base": {seg(11, 20)},
		"gap":            {seg(10, 20), seg(21, 25)},
		"overlap":        {seg(10, 20), seg(19, 25)},
	} {
		if err := journal.CheckContiguous(10, segs); !errors.Is(err, journal.ErrGap) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}
