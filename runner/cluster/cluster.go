// Package cluster knows what the runner needs about Redis Cluster: which node owns which hash
// slot (from CLUSTER NODES), which slots are being migrated, and the slot of a key (CRC16 with
// hash tags), so that a backup can dump every master and a restore can send each key to its owner.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"stash.dev/redis/runner/redisconn"
)

// Slots is the number of hash slots of a Redis Cluster.
const Slots = 16384

// Node is one line of CLUSTER NODES.
type Node struct {
	ID   string
	Addr string // host:port for clients
	// Master is true for masters; MasterID names the master of a replica.
	Master   bool
	MasterID string
	// Failed is true when the node is flagged fail or noaddr.
	Failed bool
	// Myself marks the node that answered.
	Myself bool
	// Slots owned by a master, as inclusive ranges.
	Slots []Range
	// Migrating maps a slot this node is migrating away to the target node id; Importing maps
	// a slot it is importing to the source node id.
	Migrating, Importing map[int]string
}

// Range is an inclusive range of slots.
type Range struct {
	Start int `json:"start"`
	End   int `json:"end"`
}

// Topology is a parsed CLUSTER NODES reply.
type Topology struct {
	Nodes []Node
}

// Discover reads CLUSTER NODES through c.
func Discover(ctx context.Context, c *redis.Client) (Topology, error) {
	txt, err := c.ClusterNodes(ctx).Result()
	if err != nil {
		return Topology{}, fmt.Errorf("read cluster nodes: %w", err)
	}
	t, err := ParseNodes(txt)
	if err != nil {
		return Topology{}, err
	}
	// A node reports its own address as ":port" until it has learned its IP.
	host, _, _ := net.SplitHostPort(c.Options().Addr)
	for i, n := range t.Nodes {
		if strings.HasPrefix(n.Addr, ":") && host != "" {
			t.Nodes[i].Addr = host + n.Addr
		}
	}
	return t, nil
}

// DiscoverAll is Discover plus the migration state of every master: a node reports only its own
// MIGRATING and IMPORTING slots, so each master is asked.
func DiscoverAll(ctx context.Context, base redisconn.Options, c *redis.Client) (Topology, error) {
	t, err := Discover(ctx, c)
	if err != nil {
		return Topology{}, err
	}
	for i, n := range t.Nodes {
		if !n.Master || n.Failed {
			continue
		}
		nc := NodeOptions(base, n.Addr).Client(0)
		txt, err := nc.ClusterNodes(ctx).Result()
		nc.Close()
		if err != nil {
			return Topology{}, fmt.Errorf("read cluster nodes from %s: %w", n.Addr, err)
		}
		own, err := ParseNodes(txt)
		if err != nil {
			return Topology{}, err
		}
		for _, o := range own.Nodes {
			if o.Myself && o.ID == n.ID {
				t.Nodes[i].Migrating, t.Nodes[i].Importing = o.Migrating, o.Importing
			}
		}
	}
	return t, nil
}

// ParseNodes parses the CLUSTER NODES format:
// <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>...
func ParseNodes(txt string) (Topology, error) {
	var t Topology
	for line := range strings.Lines(txt) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 8 {
			return Topology{}, fmt.Errorf("parse cluster nodes: short line %q", line)
		}
		n := Node{ID: f[0], Migrating: map[int]string{}, Importing: map[int]string{}}
		addr, _, _ := strings.Cut(f[1], "@")
		addr, _, _ = strings.Cut(addr, ",")
		n.Addr = addr
		for flag := range strings.SplitSeq(f[2], ",") {
			switch flag {
			case "master":
				n.Master = true
			case "myself":
				n.Myself = true
			case "fail", "noaddr", "handshake":
				n.Failed = true
			}
		}
		if f[3] != "-" {
			n.MasterID = f[3]
		}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				body := strings.Trim(s, "[]")
				if slot, id, ok := strings.Cut(body, "->-"); ok {
					k, err := strconv.Atoi(slot)
					if err != nil {
						return Topology{}, fmt.Errorf("parse cluster nodes: bad slot %q", s)
					}
					n.Migrating[k] = id
				} else if slot, id, ok := strings.Cut(body, "-<-"); ok {
					k, err := strconv.Atoi(slot)
					if err != nil {
						return Topology{}, fmt.Errorf("parse cluster nodes: bad slot %q", s)
					}
					n.Importing[k] = id
				}
				continue
			}
			a, b, isRange := strings.Cut(s, "-")
			lo, err1 := strconv.Atoi(a)
			hi := lo
			var err2 error
			if isRange {
				hi, err2 = strconv.Atoi(b)
			}
			if err1 != nil || err2 != nil || lo < 0 || hi >= Slots || lo > hi {
				return Topology{}, fmt.Errorf("parse cluster nodes: bad slot range %q", s)
			}
			n.Slots = append(n.Slots, Range{lo, hi})
		}
		t.Nodes = append(t.Nodes, n)
	}
	if len(t.Nodes) == 0 {
		return Topology{}, errors.New("parse cluster nodes: no nodes")
	}
	return t, nil
}

// Masters returns the masters that own slots, sorted by their first slot.
func (t Topology) Masters() []Node {
	var ms []Node
	for _, n := range t.Nodes {
		if n.Master && len(n.Slots) > 0 {
			ms = append(ms, n)
		}
	}
	slices.SortFunc(ms, func(a, b Node) int { return a.Slots[0].Start - b.Slots[0].Start })
	return ms
}

// Node returns the node with the given id.
func (t Topology) Node(id string) (Node, bool) {
	for _, n := range t.Nodes {
		if n.ID == id {
			return n, true
		}
	}
	return Node{}, false
}

// Replica returns a healthy replica of the master id.
func (t Topology) Replica(id string) (Node, bool) {
	for _, n := range t.Nodes {
		if n.MasterID == id && !n.Master && !n.Failed {
			return n, true
		}
	}
	return Node{}, false
}

// Owners maps every slot to the index of its master in Masters(); -1 for an unassigned slot.
// It returns an error naming the first unassigned slot, because a restore could not place keys
// hashed to it.
func (t Topology) Owners() ([Slots]int16, error) {
	var own [Slots]int16
	for i := range own {
		own[i] = -1
	}
	for i, m := range t.Masters() {
		for _, r := range m.Slots {
			for s := r.Start; s <= r.End; s++ {
				own[s] = int16(i)
			}
		}
	}
	for s, o := range own {
		if o < 0 {
			return own, fmt.Errorf("cluster slot %d is not served by any master (check CLUSTER INFO: cluster_state must be ok)", s)
		}
	}
	return own, nil
}

// Migrations returns the slots that are being migrated, by any node, sorted.
func (t Topology) Migrations() []int {
	seen := map[int]bool{}
	for _, n := range t.Nodes {
		for s := range n.Migrating {
			seen[s] = true
		}
		for s := range n.Importing {
			seen[s] = true
		}
	}
	out := make([]int, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Signature summarizes slot ownership and migrations; two topologies with equal signatures
// place every key on the same master.
func (t Topology) Signature() string {
	var b strings.Builder
	for _, m := range t.Masters() {
		fmt.Fprintf(&b, "%s:%v;", m.ID, m.Slots)
	}
	fmt.Fprintf(&b, "migrating:%v", t.Migrations())
	return b.String()
}

// NodeOptions returns base with the address of a cluster node: same credentials and TLS.
func NodeOptions(base redisconn.Options, addr string) redisconn.Options {
	return base.WithAddr(addr)
}

// Slot returns the hash slot of key: CRC16 of the key, or of its hash tag (the part between the
// first '{' and the next '}' if that is not empty), modulo 16384.
func Slot(key []byte) int {
	if i := bytes.IndexByte(key, '{'); i >= 0 {
		if j := bytes.IndexByte(key[i+1:], '}'); j > 0 {
			key = key[i+1 : i+1+j]
		}
	}
	return int(crc16(key) % Slots)
}

// crc16 is CRC16-CCITT (XMODEM), as in the Redis Cluster specification.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^c]
	}
	return crc
}

var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// ParseRedirect parses the redirection replies of a cluster node, "MOVED slot host:port" (the
// slot has moved for good) and "ASK slot host:port" (ask the node once, after ASKING, while the
// slot migrates). ok is false for any other message.
func ParseRedirect(msg string) (addr string, ask, ok bool) {
	f := strings.Fields(msg)
	if len(f) != 3 || (f[0] != "MOVED" && f[0] != "ASK") {
		return "", false, false
	}
	return f[2], f[0] == "ASK", true
}
