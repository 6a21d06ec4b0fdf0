package plugin

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"stash.dev/redis/api/v1alpha1"
)

// sessionState is what following a BackupSession or RestoreSession shows.
type sessionState struct {
	phase     v1alpha1.SessionPhase
	errMsg    string
	job       string
	snapshot  string
	keys      int64
	bytes     int64
	totalKeys int64
	duration  string
	start     *metav1.Time
	updated   *metav1.Time
}

func backupState(s *v1alpha1.BackupSession) sessionState {
	st := sessionState{phase: s.Status.Phase, errMsg: s.Status.Error, job: s.Status.Job, snapshot: s.Status.Snapshot,
		keys: s.Status.Keys, bytes: s.Status.Bytes, duration: s.Status.SessionDuration, start: s.Status.StartTime, updated: s.Status.CompletionTime}
	if p := s.Status.Progress; p != nil && st.keys == 0 {
		st.keys, st.bytes, st.totalKeys, st.updated = p.Keys, p.Bytes, p.TotalKeys, p.UpdateTime
	}
	return st
}

func restoreState(s *v1alpha1.RestoreSession) sessionState {
	st := sessionState{phase: s.Status.Phase, errMsg: s.Status.Error, job: s.Status.Job, snapshot: s.Status.Snapshot,
		keys: s.Status.KeysRestored, bytes: s.Status.Bytes, duration: s.Status.SessionDuration, start: s.Status.StartTime, updated: s.Status.CompletionTime}
	if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionRestoreRefused); c != nil && restoreHints[c.Reason] != "" {
		// status.error says it in the RestoreSession's fields; this user has flags.
		st.errMsg = fmt.Sprintf("%s (%s)", c.Message, restoreHints[c.Reason])
	}
	if p := s.Status.Progress; p != nil && st.keys == 0 {
		st.keys, st.bytes, st.totalKeys, st.updated = p.Keys, p.Bytes, p.TotalKeys, p.UpdateTime
	}
	return st
}

// restoreHints are the next steps, in `kubectl stash restore`'s flags, after a restore the
// runner refused before writing (the reasons of v1alpha1.ConditionRestoreRefused).
var restoreHints = map[string]string{
	v1alpha1.ReasonTargetNotEmpty:       "restore again with --flush to empty it first, or --conflict-policy Replace to overwrite keys",
	v1alpha1.ReasonLossyRestore:         "restore again with --allow-lossy to leave those keys out, into a server of the snapshot's version, or choose keys with --databases or --key-pattern",
	v1alpha1.ReasonPointInTimeSelection: pointInTimeHint,
}

// pointInTimeHint is v1alpha1.CheckPointInTimeSelection in the plugin's flags.
const pointInTimeHint = "--to-time restores every database and key: drop --databases and --key-pattern"

// done reports whether the phase is final, and whether it is a success.
func (s sessionState) done() (done, ok bool) {
	switch s.phase {
	case v1alpha1.SessionSucceeded:
		return true, true
	case v1alpha1.SessionFailed, v1alpha1.SessionSkipped, v1alpha1.SessionInvalid, v1alpha1.SessionUnknown:
		return true, false
	}
	return false, false
}

// line is one progress line: phase, keys, bytes and rate.
func (s sessionState) line(now time.Time) string {
	phase := string(s.phase)
	if phase == "" {
		phase = "Pending"
	}
	l := phase
	if s.keys > 0 || s.bytes > 0 {
		l = fmt.Sprintf("%-9s", phase)
		if s.totalKeys > 0 {
			l += fmt.Sprintf("  %d/%d keys", s.keys, s.totalKeys)
		} else {
			l += fmt.Sprintf("  %d keys", s.keys)
		}
		l += "  " + v1alpha1.HumanBytes(s.bytes)
		at := now
		if s.updated != nil {
			at = s.updated.Time
		}
		if s.start != nil && at.Sub(s.start.Time) > 0 {
			l += "  " + v1alpha1.HumanBytes(int64(float64(s.bytes)/at.Sub(s.start.Time).Seconds())) + "/s"
		}
	}
	return l
}

// followOptions say how to follow a session and what to tell the user when it fails.
type followOptions struct {
	kind     string // BackupSession or RestoreSession
	name     string
	ns       string
	interval time.Duration
	timeout  time.Duration // 0: until the session ends
	describe string        // the command that describes the session, for hints
	get      func(ctx context.Context) (sessionState, error)
}

// follow polls the session until it ends, printing a line whenever its progress changes.
// It returns nil when the session succeeded and an error with the reason and where to
// look otherwise.
func follow(ctx context.Context, out io.Writer, f followOptions) error {
	var timeout <-chan time.Time
	if f.timeout > 0 {
		t := time.NewTimer(f.timeout)
		defer t.Stop()
		timeout = t.C
	}
	last := ""
	var st sessionState
	tick := time.NewTicker(f.interval)
	defer tick.Stop()
	for {
		var err error
		st, err = f.get(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if err == nil {
			if l := st.line(time.Now()); l != last {
				fmt.Fprintln(out, l)
				last = l
			}
			if done, ok := st.done(); done {
				if ok {
					fmt.Fprintf(out, "%s %q succeeded%s\n", strings.ToLower(f.kind), f.name, summary(st))
					return nil
				}
				return fmt.Errorf("%s %q %s: %s (see: %s)", strings.ToLower(f.kind), f.name, strings.ToLower(string(st.phase)), reason(st), where(st, f))
			}
		}
		select {
		case <-timeout:
			return fmt.Errorf("timed out after %s waiting for %s %q, still %s (see: %s)", f.timeout, strings.ToLower(f.kind), f.name, orPending(st.phase), f.describe)
		case <-ctx.Done():
			return fmt.Errorf("stopped waiting for %s %q, still %s: it goes on in the cluster (see: %s)", strings.ToLower(f.kind), f.name, orPending(st.phase), f.describe)
		case <-tick.C:
		}
	}
}

func orPending(p v1alpha1.SessionPhase) string {
	if p == "" {
		return string(v1alpha1.SessionPending)
	}
	return string(p)
}

func reason(st sessionState) string {
	if st.errMsg != "" {
		return firstLine(st.errMsg)
	}
	return "no reason recorded"
}

func where(st sessionState, f followOptions) string {
	if st.job != "" {
		return fmt.Sprintf("kubectl logs job/%s -n %s", st.job, f.ns)
	}
	return f.describe
}

func summary(st sessionState) string {
	s := ""
	if st.snapshot != "" {
		s += ": snapshot " + st.snapshot
	}
	if st.keys > 0 || st.bytes > 0 {
		s += fmt.Sprintf(", %d keys, %s", st.keys, v1alpha1.HumanBytes(st.bytes))
	}
	if st.duration != "" {
		s += " in " + st.duration
	}
	return s
}
