package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/follow"
	"stash.dev/redis/runner/journal"
	"stash.dev/redis/runner/repo"
)

// RunContinuous is the in-cluster follower of a BackupConfiguration with spec.continuous (what
// its Deployment runs): it resolves the target and the repository as a backup session does,
// follows the target (runner/follow: a base snapshot, then journal segments) until ctx ends,
// and reports in the configuration's status.continuous the chain and the window a restore can
// reach, after every base and segment. It reconnects after a lost link by itself; an error it
// returns (the repository failing, the target refusing PSYNC) is written into the status
// first, and the Deployment's Pod restarts.
func RunContinuous(ctx context.Context, c client.Client, ns, name string, o Options) error {
	bc := &v1alpha1.BackupConfiguration{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, bc); err != nil {
		return fmt.Errorf("read BackupConfiguration %s/%s: %w", ns, name, err)
	}
	// The status is reported from the follower's goroutines (segments, bases, retention): one
	// at a time, on a copy of its own, so that a patch's response never lands in the object
	// runContinuous reads.
	var mu sync.Mutex
	cur := bc.DeepCopy()
	report := func(change func(*v1alpha1.ContinuousStatus)) {
		mu.Lock()
		defer mu.Unlock()
		base := cur.DeepCopy()
		if cur.Status.Continuous == nil {
			cur.Status.Continuous = &v1alpha1.ContinuousStatus{}
		}
		change(cur.Status.Continuous)
		cur.Status.Continuous.Follower = o.Hostname
		// A lost status update is not worth stopping the journal for: the next one carries it.
		if err := c.Status().Patch(context.WithoutCancel(ctx), cur, client.MergeFrom(base)); err != nil {
			o.log("write status of BackupConfiguration %s/%s: %v", ns, name, err)
		}
	}
	err := runContinuous(ctx, c, bc, o, report)
	if err != nil && ctx.Err() == nil {
		report(func(s *v1alpha1.ContinuousStatus) { s.Error = err.Error() })
	}
	return err
}

func runContinuous(ctx context.Context, c client.Client, bc *v1alpha1.BackupConfiguration, o Options, report func(func(*v1alpha1.ContinuousStatus))) error {
	cs := bc.Spec.Continuous
	if cs == nil || !cs.Enabled {
		return fmt.Errorf("BackupConfiguration %s/%s does not enable spec.continuous", bc.Namespace, bc.Name)
	}
	interval := follow.DefaultSegmentInterval
	if cs.SegmentInterval != "" {
		d, err := time.ParseDuration(cs.SegmentInterval)
		if err != nil {
			return fmt.Errorf("spec.continuous.segmentInterval: %w", err)
		}
		interval = d
	}
	baseInterval := follow.DefaultBaseInterval
	if cs.BaseInterval != "" {
		d, err := time.ParseDuration(cs.BaseInterval)
		if err != nil {
			return fmt.Errorf("spec.continuous.baseInterval: %w", err)
		}
		baseInterval = d
	}
	var window time.Duration
	if cs.Window != "" {
		d, err := time.ParseDuration(cs.Window)
		if err != nil {
			return fmt.Errorf("spec.continuous.window: %w", err)
		}
		window = d
	}
	ends, err := o.open(ctx, c, bc.Namespace, bc.Spec.Repository, &bc.Spec.Target, repo.Options{Create: true})
	if err != nil {
		return err
	}
	defer ends.repo.Close()
	t := ends.target
	if t.Mode == string(v1alpha1.RedisModeCluster) {
		return errors.New("continuous backup follows one server or a Sentinel's master: cluster targets are not supported yet")
	}
	if len(t.Databases) > 0 {
		o.log("continuous backup records every database of the server; target.redis.databases applies to the scheduled backups only")
	}
	var tl journal.Timeline // the source's marks of the chain, for the window and its inexact stretches
	err = follow.Run(ctx, follow.Options{
		Redis: t.Redis, Sentinel: t.Sentinel, Repository: ends.repo, SegmentInterval: interval,
		BaseInterval: baseInterval, KeepWithinWindow: window,
		OnRetention: func(res journal.WindowRetention) {
			report(func(s *v1alpha1.ContinuousStatus) {
				s.WindowKeptFrom, s.WindowBytes = &metav1.Time{Time: res.Start}, res.KeptBytes
			})
		},
		Hostname: o.Hostname, RunnerVersion: o.RunnerVersion, Reconnect: true,
		Logf: o.log,
		OnBase: func(res backup.Result) {
			start := chainStart(res.SnapshotID)
			report(func(s *v1alpha1.ContinuousStatus) {
				s.Chain, s.WindowStart, s.WindowEnd, s.Segments, s.Error = res.SnapshotID, start, start, 0, ""
				s.Inexact = nil
			})
			tl = journal.Timeline{}
		},
		OnSegment: func(m journal.Manifest) {
			report(func(s *v1alpha1.ContinuousStatus) {
				if s.Chain != m.Chain { // a restarted follower continues its chain
					s.Chain, s.WindowStart, s.Segments = m.Chain, chainStart(m.Chain), 0
					tl = journal.Timeline{}
					// What the chain held before this process: its marks place the stretch
					// since the last one.
					if segs, err := journal.List(ctx, ends.repo, m.Chain); err == nil {
						for _, old := range segs {
							if old.StartOffset < m.StartOffset {
								tl.Add(old)
							}
						}
					}
				}
				if m.Commands > 0 {
					s.WindowEnd = &metav1.Time{Time: m.LastTime}
				}
				if m.SourceTime {
					tl.Add(m)
					if start, end, ok := tl.Window(); ok {
						s.WindowStart, s.WindowEnd = &metav1.Time{Time: start}, &metav1.Time{Time: end}
					}
					s.Inexact = s.Inexact[:0]
					for _, st := range tl.Inexact[max(0, len(tl.Inexact)-10):] {
						s.Inexact = append(s.Inexact, v1alpha1.InexactStretch{From: metav1.Time{Time: st.From}, To: metav1.Time{Time: st.To}, Writes: st.Writes})
					}
				}
				s.Segments++
				s.Error = ""
			})
		},
	})
	if err != nil {
		return fmt.Errorf("follow %s into %s: %w", t.Redis.Addr, ends.url, err)
	}
	return nil
}

// chainStart is the oldest instant a restore through a chain reaches, from the chain's id (its
// base snapshot's, which records the backup's start to the second, rounded down): the next
// whole second, so that a restore to the time shown is inside the window.
func chainStart(chain string) *metav1.Time {
	t, err := time.Parse("20060102T150405Z", strings.SplitN(chain, "-", 2)[0])
	if err != nil {
		return nil
	}
	return &metav1.Time{Time: t.Add(time.Second)}
}
