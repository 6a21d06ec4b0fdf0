package restore

import (
	"fmt"
	"strings"
)

// The refusals of a restore, as types that carry the facts. Their messages name no flag and
// no API field: stash-runner's commands (runner/cli) and the in-cluster session
// (runner/session) each add the next step in their own user's words.

// TargetNotEmptyError is a target database that holds keys when the restore was asked
// neither to empty it first (Options.Flush) nor to overwrite keys (Options.Replace).
// Nothing has been written then.
type TargetNotEmptyError struct {
	Addr string
	DB   int
	Keys int64
}

func (e *TargetNotEmptyError) Error() string {
	return fmt.Sprintf("target database %d of %s has %d keys: refusing to restore over them", e.DB, e.Addr, e.Keys)
}

// LossyError is a snapshot with values the target cannot hold (Options.AllowLossy unset).
// Nothing has been written then. It wraps ErrLossy.
type LossyError struct {
	Snapshot, Target string
	// Keys is how many keys cannot be restored; Reasons the distinct reasons, Examples the
	// first keys ("db 0 \"k\"").
	Keys     int64
	Reasons  []string
	Examples []string
}

func (e *LossyError) Error() string {
	return fmt.Sprintf("%v: %d keys of snapshot %s cannot be restored into %s (%s; e.g. %s); nothing was written",
		ErrLossy, e.Keys, e.Snapshot, e.Target, strings.Join(e.Reasons, "; "), strings.Join(e.Examples, ", "))
}

func (e *LossyError) Unwrap() error { return ErrLossy }

// MissingDatabasesError is a selection of databases the snapshot does not have: restoring
// nothing and calling it a success would hide a typo or a wrong snapshot.
type MissingDatabasesError struct {
	Snapshot      string
	Missing, Have []int
}

func (e *MissingDatabasesError) Error() string {
	return fmt.Sprintf("snapshot %s has no database %s: it has %s", e.Snapshot, joinInts(e.Missing), joinInts(e.Have))
}

// TooFewDatabasesError is a snapshot database beyond the target's configured databases.
type TooFewDatabasesError struct {
	Snapshot        string
	DB              int
	TargetDatabases int
}

func (e *TooFewDatabasesError) Error() string {
	return fmt.Sprintf("snapshot %s has database %d but the target has only %d databases (its 'databases' setting)", e.Snapshot, e.DB, e.TargetDatabases)
}

// ReplicationUnavailableError is MethodReplication asked for a target it cannot restore into.
type ReplicationUnavailableError struct {
	Addr, Reason string
}

func (e *ReplicationUnavailableError) Error() string {
	return fmt.Sprintf("cannot restore into %s through replication: %s", e.Addr, e.Reason)
}

// NoJournalError is a restore to a point in time pinned to a snapshot without a journal: it
// restores only to its own instant.
type NoJournalError struct{ Snapshot string }

func (e *NoJournalError) Error() string {
	return fmt.Sprintf("snapshot %s has no journal: it restores only to its own instant", e.Snapshot)
}
