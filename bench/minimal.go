package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
)

// The minimal loop is the yardstick: the simplest fast backup one would write with go-redis,
// one connection, SCAN + pipelined DUMP/PTTL, raw records to a file, and pipelined RESTORE back.
// No compression, no encryption, no verification.

func minimalDump(ctx context.Context, addr string, db int, out string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db, Protocol: 2, DisableIdentity: true, ReadTimeout: -1})
	defer c.Close()
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	var cursor uint64
	var hdr [binary.MaxVarintLen64 * 3]byte
	for {
		keys, next, err := c.Scan(ctx, cursor, "", 1000).Result()
		if err != nil {
			return err
		}
		p := c.Pipeline()
		dumps := make([]*redis.StringCmd, len(keys))
		ttls := make([]*redis.DurationCmd, len(keys))
		for i, k := range keys {
			dumps[i] = p.Dump(ctx, k)
			ttls[i] = p.PTTL(ctx, k)
		}
		if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for i, k := range keys {
			v, err := dumps[i].Result()
			if errors.Is(err, redis.Nil) {
				continue
			}
			ttl := ttls[i].Val()
			if ttl < 0 {
				ttl = 0
			}
			n := binary.PutUvarint(hdr[:], uint64(len(k)))
			n += binary.PutUvarint(hdr[n:], uint64(len(v)))
			n += binary.PutUvarint(hdr[n:], uint64(ttl/time.Millisecond))
			w.Write(hdr[:n])
			w.WriteString(k)
			w.WriteString(v)
		}
		cursor = next
		if cursor == 0 {
			break
		}
	}
	return w.Flush()
}

func minimalRestore(ctx context.Context, addr string, db int, in string) error {
	c := redis.NewClient(&redis.Options{Addr: addr, DB: db, Protocol: 2, DisableIdentity: true, ReadTimeout: -1})
	defer c.Close()
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	p := c.Pipeline()
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		_, err := p.Exec(ctx)
		n = 0
		return err
	}
	for {
		kl, err := binary.ReadUvarint(r)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		vl, _ := binary.ReadUvarint(r)
		ttl, err := binary.ReadUvarint(r)
		if err != nil {
			return err
		}
		buf := make([]byte, kl+vl)
		if _, err := io.ReadFull(r, buf); err != nil {
			return err
		}
		p.RestoreReplace(ctx, string(buf[:kl]), time.Duration(ttl)*time.Millisecond, string(buf[kl:]))
		if n++; n == 1000 {
			if err := flush(); err != nil {
				return fmt.Errorf("restore: %w", err)
			}
		}
	}
	return flush()
}
