package session

import (
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/load"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/restore"
)

// The libraries' errors carry facts and name no flag or field; this file says the next step
// in the words of a session's user, who writes a RestoreSession or a BackupConfiguration.

// statusError is err as a session's status.error: the facts and the fields that act on them.
func statusError(err error) string {
	if hint := hintFor(err); hint != "" {
		return fmt.Sprintf("%v (%s)", err, hint)
	}
	return err.Error()
}

// hintFor returns the next step for err in the session's fields, or "".
func hintFor(err error) string {
	var (
		notEmpty   *restore.TargetNotEmptyError
		lossy      *restore.LossyError
		pitSel     *v1alpha1.PointInTimeSelectionError
		noJournal  *restore.NoJournalError
		missingDBs *restore.MissingDatabasesError
		fewDBs     *restore.TooFewDatabasesError
		clusterDB  *v1alpha1.ClusterDatabaseError
		notCluster *backup.NotClusterError
		noReplica  *backup.NoHealthyReplicaError
		tlsErr     *redisconn.TLSVerifyError
		sentinel   *redisconn.SentinelNotDataNodeError
	)
	switch {
	case errors.As(err, &notEmpty):
		return "set spec.flushBeforeRestore to empty it first, or spec.conflictPolicy: Replace to overwrite keys"
	case errors.As(err, &lossy):
		return "set spec.allowLossy to restore the other keys, restore into a server of the snapshot's version, or leave those keys out with spec.databases or spec.keyPattern"
	case errors.As(err, &pitSel):
		return "spec.pointInTime restores every database and key: remove spec.databases, spec.keyPattern and the target's databases"
	case errors.As(err, &noJournal):
		return "remove spec.pointInTime to restore the snapshot itself, or leave spec.snapshot empty to restore from the chain that covers the point"
	case errors.As(err, &missingDBs):
		return "fix spec.databases or the target's databases, or pick another spec.snapshot"
	case errors.As(err, &fewDBs):
		return "raise the target's 'databases' setting, or leave that database out with spec.databases"
	case errors.As(err, &clusterDB):
		return "name only the databases the cluster has in the target's databases (and a RestoreSession's spec.databases), raise cluster-databases on Valkey 9, or use a standalone server"
	case errors.Is(err, load.ErrKeyAppeared):
		return "restore into a server nobody writes to, or set spec.conflictPolicy: Replace to keep the last copy"
	case errors.As(err, &notCluster):
		return "spec.target.readFromReplica applies to clusters; for a standalone replica, make it the target"
	case errors.As(err, &noReplica):
		return "back up without spec.target.readFromReplica"
	case errors.As(err, &tlsErr) && tlsErr.Reason == redisconn.TLSUnknownAuthority:
		return "name the CA in the target's tls.caSecret"
	case errors.As(err, &tlsErr) && tlsErr.Reason == redisconn.TLSWrongName:
		return "set the target's tls.serverName to a name in the certificate"
	case errors.As(err, &sentinel), errors.Is(err, redisconn.ErrNoMasterName):
		return "set the target's mode to sentinel with its masterName (target.ref.masterName for an AppBinding)"
	}
	return ""
}

// refusal returns the condition a restore refused before writing anything leaves on its
// RestoreSession (v1alpha1.ConditionRestoreRefused, Reason one of the v1alpha1.Reason*),
// so that a client can phrase the next step in its own user's words, or nil.
func refusal(err error) *metav1.Condition {
	var (
		notEmpty *restore.TargetNotEmptyError
		lossy    *restore.LossyError
		pitSel   *v1alpha1.PointInTimeSelectionError
	)
	var reason string
	switch {
	case errors.As(err, &notEmpty):
		reason = v1alpha1.ReasonTargetNotEmpty
	case errors.As(err, &lossy):
		reason = v1alpha1.ReasonLossyRestore
	case errors.As(err, &pitSel):
		reason = v1alpha1.ReasonPointInTimeSelection
	default:
		return nil
	}
	return &metav1.Condition{Type: v1alpha1.ConditionRestoreRefused, Status: metav1.ConditionTrue, Reason: reason, Message: err.Error()}
}
