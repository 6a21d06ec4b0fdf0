package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"stash.dev/redis/runner/store"
)

// A lease makes one process the only writer of something in a repository (the journal of
// continuous backup: two followers would interleave their segments and break the chain), with
// nothing but the storage: no lock service, no clock shared beyond a lease's time to live.
//
// Layout: leases/<name>/<epoch>.json, an object per holder, each created with a conditional
// write (store.Bucket.Create), so of two processes that find the lease free exactly one gets
// the next epoch. The holder renews its own object every third of the time to live; a lease
// not renewed within its time to live (a crashed follower) may be taken by the next epoch, and
// a holder that finds a newer epoch than its own has lost the lease and stops.
const leasesPrefix = "leases/"

// DefaultLeaseTTL is how long a lease lasts without renewal: how long a crashed holder blocks
// the next one.
const DefaultLeaseTTL = time.Minute

// ErrLeaseHeld is wrapped by the error of AcquireLease when another process holds the lease.
var ErrLeaseHeld = errors.New("held by another process")

// ErrLeaseLost is the cause of a lease's context when the lease was lost: not renewed in time,
// or taken over after it expired.
var ErrLeaseLost = errors.New("lease lost")

// LeaseHolder says who holds a lease, for the message of the process that is refused.
type LeaseHolder struct {
	Host string `json:"host"`
	PID  int    `json:"pid"`
	// PIDNamespace names the holder's process-id namespace (Linux), so that a pid is judged only
	// where it means the same process: see holderGone.
	PIDNamespace string    `json:"pidNamespace,omitempty"`
	Started      time.Time `json:"started"`
	Renewed      time.Time `json:"renewed"`
	Expires      time.Time `json:"expires"`
}

func (h LeaseHolder) String() string {
	return fmt.Sprintf("host %s, pid %d, since %s (renewed %s, expires %s unless renewed)", h.Host, h.PID,
		h.Started.UTC().Format(time.RFC3339), h.Renewed.UTC().Format(time.RFC3339), h.Expires.UTC().Format(time.RFC3339))
}

// Lease is a held lease; Release gives it up.
type Lease struct {
	r      *Repository
	name   string
	epoch  int64
	ttl    time.Duration
	holder LeaseHolder
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func leaseDir(name string) string { return leasesPrefix + name + "/" }

func leaseKey(name string, epoch int64) string {
	return fmt.Sprintf("%s%020d.json", leaseDir(name), epoch)
}

// AcquireLease takes the lease name for this process (host is recorded with the pid), or fails
// with ErrLeaseHeld naming the holder. The returned context is ctx, cancelled with cause
// ErrLeaseLost if the lease is lost; the lease is renewed until Release or until ctx ends.
// ttl 0 means DefaultLeaseTTL.
func (r *Repository) AcquireLease(ctx context.Context, name, host string, ttl time.Duration) (*Lease, context.Context, error) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	epoch, holder, err := r.newestLease(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	if holder != nil && now.Before(holder.Expires) && !holderGone(*holder, host) {
		return nil, nil, fmt.Errorf("lease %q of repository %s: %w: %s; stop that process, or wait until its lease expires",
			name, r.bucket.URL, ErrLeaseHeld, holder)
	}
	l := &Lease{r: r, name: name, epoch: epoch + 1, ttl: ttl, stop: make(chan struct{}), done: make(chan struct{}),
		holder: LeaseHolder{Host: host, PID: os.Getpid(), PIDNamespace: pidNamespace(), Started: now, Renewed: now,
			Expires: now.Add(ttl)}}
	b, err := json.Marshal(l.holder)
	if err != nil {
		return nil, nil, err
	}
	if err := r.bucket.Create(ctx, leaseKey(name, l.epoch), b, "application/json"); err != nil {
		if errors.Is(err, store.ErrExists) {
			_, other, _ := r.newestLease(ctx, name)
			who := "another process took it at the same time"
			if other != nil {
				who = other.String()
			}
			return nil, nil, fmt.Errorf("lease %q of repository %s: %w: %s", name, r.bucket.URL, ErrLeaseHeld, who)
		}
		return nil, nil, fmt.Errorf("take lease %q of repository %s: %w", name, r.bucket.URL, err)
	}
	// The expired epochs before ours are of no use to anyone.
	if keys, err := r.ListObjects(ctx, leaseDir(name), false); err == nil {
		for _, k := range keys {
			if e, ok := leaseEpoch(k); ok && e < l.epoch {
				_ = r.DeleteObject(ctx, k)
			}
		}
	}
	lctx, cancel := context.WithCancelCause(ctx)
	l.cancel = cancel
	go l.renew(lctx)
	return l, lctx, nil
}

// newestLease returns the newest epoch of lease name and its holder (nil when there is none or
// its object vanished meanwhile).
func (r *Repository) newestLease(ctx context.Context, name string) (int64, *LeaseHolder, error) {
	keys, err := r.ListObjects(ctx, leaseDir(name), false)
	if err != nil {
		return 0, nil, err
	}
	var newest int64
	var key string
	for _, k := range keys {
		if e, ok := leaseEpoch(k); ok && e > newest {
			newest, key = e, k
		}
	}
	if key == "" {
		return 0, nil, nil
	}
	b, err := r.bucket.ReadAll(ctx, key)
	if isNotFound(err) {
		return newest, nil, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read lease %s: %w", key, err)
	}
	var h LeaseHolder
	if err := json.Unmarshal(b, &h); err != nil {
		// An unreadable lease object protects nothing; the next epoch replaces it.
		return newest, nil, nil
	}
	return newest, &h, nil
}

func leaseEpoch(key string) (int64, bool) {
	base := path.Base(key)
	if !strings.HasSuffix(base, ".json") {
		return 0, false
	}
	e, err := strconv.ParseInt(strings.TrimSuffix(base, ".json"), 10, 64)
	return e, err == nil
}

// renew rewrites the lease every third of its time to live until Release or ctx ends, and
// cancels ctx with ErrLeaseLost when a newer epoch exists or the lease could not be renewed
// before it expired.
func (l *Lease) renew(ctx context.Context) {
	defer close(l.done)
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.renewOnce(ctx); err != nil {
			if errors.Is(err, ErrLeaseLost) || time.Now().After(l.holder.Expires) {
				l.cancel(fmt.Errorf("%w: %w", ErrLeaseLost, err))
				return
			}
		}
	}
}

func (l *Lease) renewOnce(ctx context.Context) error {
	newest, holder, err := l.r.newestLease(ctx, l.name)
	if err != nil {
		return err
	}
	if newest > l.epoch {
		who := "another process"
		if holder != nil {
			who = holder.String()
		}
		return fmt.Errorf("%w: lease %q of repository %s was taken by %s after it was not renewed in time", ErrLeaseLost, l.name, l.r.bucket.URL, who)
	}
	h := l.holder
	h.Renewed = time.Now()
	h.Expires = h.Renewed.Add(l.ttl)
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := l.r.bucket.WriteAll(ctx, leaseKey(l.name, l.epoch), b, nil); err != nil {
		return fmt.Errorf("renew lease %q: %w", l.name, err)
	}
	l.holder = h
	return nil
}

// Release stops renewing the lease and removes it, so that the next holder need not wait for
// it to expire; it does so even when ctx has ended.
func (l *Lease) Release(ctx context.Context) {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.cancel(nil)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = l.r.DeleteObject(ctx, leaseKey(l.name, l.epoch))
	})
}

// holderGone reports whether the holder of an unexpired lease is certainly dead: it ran on this
// host, in this process-id namespace, and its pid runs no process any more. A follower killed
// (SIGKILL, an OOM kill) and started again on the same machine then takes its journal over at
// once instead of waiting out the time to live. Anything less certain (another host, another
// namespace: two Pods with hostNetwork share a host name but not their pids) waits for expiry.
func holderGone(h LeaseHolder, host string) bool {
	ns := pidNamespace()
	if h.Host != host || ns == "" || h.PIDNamespace != ns || h.PID <= 0 || h.PID == os.Getpid() {
		return false
	}
	return !processRuns(h.PID)
}

// pidNamespace names this process's pid namespace ("pid:[4026531836]"), or "" where the system
// does not say (not Linux).
func pidNamespace() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return ns
}
