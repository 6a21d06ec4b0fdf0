// Package faultproxy is a TCP proxy for tests that injects network faults between a client (the
// runner) and a server (Redis, a storage emulator): added latency, a stall (nothing forwarded while
// the connections stay open), a cut (both sides closed) and a reset (both sides closed with
// SO_LINGER 0, so the peers see ECONNRESET), at once or after a number of bytes, in one
// direction or both, switched at run time.
//
// Why our own and not toxiproxy: toxiproxy is a server driven over HTTP (or a library that pulls
// in its API server, metrics and logging); a test needs a few hundred lines that start in-process
// on a free port, need no binary, and can trigger a fault after an exact byte count, which makes
// "a cut mid-stream" deterministic instead of a race against a timer.
package faultproxy

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Direction is the way bytes travel through the proxy.
type Direction int

const (
	// Both directions.
	Both Direction = iota
	// ToServer is from the client to the upstream server (commands, uploads).
	ToServer
	// ToClient is from the upstream server to the client (replies, an RDB file, downloads).
	ToClient
)

func (d Direction) String() string {
	switch d {
	case ToServer:
		return "client→server"
	case ToClient:
		return "server→client"
	}
	return "both ways"
}

func (d Direction) has(x Direction) bool { return d == Both || d == x }

// Kind is what a fault does.
type Kind int

const (
	// None forwards everything as it comes.
	None Kind = iota
	// Latency delays every chunk by Fault.Latency; throughput is kept (chunks are pipelined).
	Latency
	// Stall stops forwarding in Fault.Dir; the connections stay open, bytes pile up in the
	// socket buffers and then the peers block, as with a hung server or a dead link without RST.
	Stall
	// Cut closes both sides of every connection (the peers read EOF or get EPIPE).
	Cut
	// Reset closes both sides of every connection with SO_LINGER 0 (the peers get ECONNRESET).
	Reset
)

func (k Kind) String() string {
	return [...]string{"none", "latency", "stall", "cut", "reset"}[k]
}

// Fault describes one fault. It takes effect once After bytes have been forwarded in Dir since
// it was set (0: at once); cut and reset then end every open connection, whatever Dir says.
type Fault struct {
	Kind    Kind
	Dir     Direction
	After   int64
	Latency time.Duration
}

// Proxy forwards connections from Addr to an upstream address.
type Proxy struct {
	upstream string
	l        net.Listener

	mu      sync.Mutex
	cond    *sync.Cond
	fault   Fault
	counted int64 // bytes in fault.Dir since the fault was set
	active  bool  // the fault's threshold was reached
	closed  bool
	conns   map[*pair]struct{}
	total   [3]int64 // bytes forwarded, by Direction (ToServer, ToClient)

	wg sync.WaitGroup
}

// pair is one proxied connection: the client's and the upstream's side.
type pair struct {
	p              *Proxy
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

// Start listens on a free port of 127.0.0.1 and forwards every connection to upstream.
func Start(upstream string) (*Proxy, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &Proxy{upstream: upstream, l: l, conns: map[*pair]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the host:port clients connect to.
func (p *Proxy) Addr() string { return p.l.Addr().String() }

// Set replaces the current fault; a stall that was in effect ends.
func (p *Proxy) Set(f Fault) {
	p.mu.Lock()
	p.fault, p.counted, p.active = f, 0, f.After == 0 && f.Kind != None
	cut := p.active && (f.Kind == Cut || f.Kind == Reset)
	p.cond.Broadcast()
	p.mu.Unlock()
	if cut {
		p.endAll(f.Kind == Reset)
	}
}

// Clear removes the fault: everything is forwarded again, stalled bytes included.
func (p *Proxy) Clear() { p.Set(Fault{}) }

// Active reports whether the current fault has taken effect (its byte threshold was reached).
func (p *Proxy) Active() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active
}

// Bytes returns how many bytes were forwarded in dir since Start (Both: the sum).
func (p *Proxy) Bytes(dir Direction) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if dir == Both {
		return p.total[ToServer] + p.total[ToClient]
	}
	return p.total[dir]
}

// Conns returns the number of open proxied connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	err := p.l.Close()
	p.endAll(false)
	p.wg.Wait()
	return err
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(c)
		}()
	}
}

func (p *Proxy) handle(c net.Conn) {
	s, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	pr := &pair{p: p, client: c, server: s, done: make(chan struct{})}
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.conns[pr] = struct{}{}
	}
	p.mu.Unlock()
	if closed {
		pr.end(false)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(pr, c, s, ToServer) }()
	go func() { defer wg.Done(); p.pipe(pr, s, c, ToClient) }()
	wg.Wait()
	pr.end(false)
	p.mu.Lock()
	delete(p.conns, pr)
	p.mu.Unlock()
}

// end closes both sides once; reset sets SO_LINGER 0 first so that the close sends RST.
func (pr *pair) end(reset bool) {
	pr.once.Do(func() {
		if reset {
			for _, c := range []net.Conn{pr.client, pr.server} {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0)
				}
			}
		}
		pr.client.Close()
		pr.server.Close()
		close(pr.done)
		// Wake a writer that waits in a stall, so that it sees the connection is gone.
		pr.p.mu.Lock()
		pr.p.cond.Broadcast()
		pr.p.mu.Unlock()
	})
}

func (p *Proxy) endAll(reset bool) {
	p.mu.Lock()
	all := make([]*pair, 0, len(p.conns))
	for pr := range p.conns {
		all = append(all, pr)
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, pr := range all {
		pr.end(reset)
	}
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst in dir: a reader goroutine timestamps chunks, the writer applies the
// fault (a latency is counted from the moment a chunk was read, so chunks stay pipelined).
func (p *Proxy) pipe(pr *pair, src, dst net.Conn, dir Direction) {
	ch := make(chan chunk, 64)
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				select {
				case ch <- chunk{b[:n], time.Now()}:
				case <-pr.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		if !p.forward(pr, dst, dir, c) {
			pr.end(false)
			for range ch {
			}
			return
		}
	}
	// src ended: pass the half-close on, as a real link would.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	} else {
		pr.end(false)
	}
}

// forward writes one chunk, split where a fault's byte threshold falls inside it.
func (p *Proxy) forward(pr *pair, dst net.Conn, dir Direction, c chunk) bool {
	b := c.b
	for len(b) > 0 {
		p.mu.Lock()
		// Wait while a stall holds this direction.
		for p.active && p.fault.Kind == Stall && p.fault.Dir.has(dir) && !p.closed {
			select {
			case <-pr.done:
				p.mu.Unlock()
				return false
			default:
			}
			p.cond.Wait()
		}
		if p.closed {
			p.mu.Unlock()
			return false
		}
		f, n := p.fault, int64(len(b))
		if !p.active && f.Kind != None && f.Dir.has(dir) && p.counted+n >= f.After {
			n = f.After - p.counted // the bytes before the threshold still pass
		}
		var delay time.Duration
		if p.active && f.Kind == Latency && f.Dir.has(dir) {
			delay = time.Until(c.at.Add(f.Latency))
		}
		p.mu.Unlock()
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-pr.done:
				return false
			}
		}
		if n > 0 {
			if _, err := dst.Write(b[:n]); err != nil {
				return false
			}
			b = b[n:]
		}
		p.mu.Lock()
		p.total[dir] += n
		trip := false
		if !p.active && p.fault == f && f.Kind != None && f.Dir.has(dir) {
			p.counted += n
			if p.counted >= f.After {
				p.active, trip = true, true
				p.cond.Broadcast()
			}
		}
		p.mu.Unlock()
		if trip && (f.Kind == Cut || f.Kind == Reset) {
			p.endAll(f.Kind == Reset)
			return false
		}
	}
	return true
}

// WaitActive blocks until the current fault has taken effect or timeout passes.
func (p *Proxy) WaitActive(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !p.Active() {
		if time.Now().After(deadline) {
			return fmt.Errorf("faultproxy: the fault did not take effect within %s (%d bytes counted)", timeout, p.counter())
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

func (p *Proxy) counter() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counted
}
