package session

import (
	"fmt"
	"strings"
	"testing"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/restore"
)

// TestStatusErrorNamesTheFields: a RestoreSession refused for a non-empty target, a lossy
// restore or a point in time with a selection says so in its status in the RestoreSession's
// fields (never a flag), and carries the reason for clients (ConditionRestoreRefused).
func TestStatusErrorNamesTheFields(t *testing.T) {
	cases := []struct {
		err    error
		reason string
		want   []string
	}{
		{&restore.TargetNotEmptyError{Addr: "h:1", DB: 0, Keys: 3}, v1alpha1.ReasonTargetNotEmpty, []string{"spec.flushBeforeRestore", "spec.conflictPolicy: Replace"}},
		{&restore.LossyError{Snapshot: "s", Target: "Valkey 8.1", Keys: 1}, v1alpha1.ReasonLossyRestore, []string{"spec.allowLossy"}},
		{fmt.Errorf("restore: %w", v1alpha1.CheckPointInTimeSelection(0, "user:*")), v1alpha1.ReasonPointInTimeSelection, []string{"spec.pointInTime", "spec.databases", "spec.keyPattern"}},
	}
	for _, c := range cases {
		msg := statusError(c.err)
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%q does not name %s", msg, w)
			}
		}
		if strings.Contains(msg, "--") {
			t.Errorf("%q names a flag", msg)
		}
		if cond := refusal(c.err); cond == nil || cond.Type != v1alpha1.ConditionRestoreRefused || cond.Reason != c.reason || cond.Message != c.err.Error() {
			t.Errorf("condition of %v: %+v", c.err, cond)
		}
	}
}
