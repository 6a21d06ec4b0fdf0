package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"stash.dev/redis/api/v1alpha1"
	"stash.dev/redis/runner/backup"
	"stash.dev/redis/runner/load"
	"stash.dev/redis/runner/redisconn"
	"stash.dev/redis/runner/repo"
	"stash.dev/redis/runner/restore"
)

// The libraries' errors carry facts and name no flag (a RestoreSession has fields, not
// flags); this file says the next step in the words of stash-runner's user.

// hintedError is an error with the flags that act on it.
type hintedError struct {
	err  error
	hint string
}

func (e *hintedError) Error() string { return fmt.Sprintf("%v (%s)", e.err, e.hint) }
func (e *hintedError) Unwrap() error { return e.err }

// withHint adds to err the flags that act on it, once; command is the stash-runner
// command that failed.
func withHint(command string, err error) error {
	var h *hintedError
	if err == nil || errors.As(err, &h) {
		return err
	}
	if hint := hintFor(command, err); hint != "" {
		return &hintedError{err: err, hint: hint}
	}
	return err
}

// hintFor returns the next step for err in flags, or "".
func hintFor(command string, err error) string {
	var (
		notEmpty    *restore.TargetNotEmptyError
		lossy       *restore.LossyError
		pitSel      *v1alpha1.PointInTimeSelectionError
		noJournal   *restore.NoJournalError
		missingDBs  *restore.MissingDatabasesError
		fewDBs      *restore.TooFewDatabasesError
		noRepl      *restore.ReplicationUnavailableError
		clusterDB   *v1alpha1.ClusterDatabaseError
		notCluster  *backup.NotClusterError
		noReplica   *backup.NoHealthyReplicaError
		methodError *backup.ClusterMethodError
		tlsErr      *redisconn.TLSVerifyError
		sentinel    *redisconn.SentinelNotDataNodeError
	)
	switch {
	case errors.As(err, &notEmpty):
		return "use --flush to empty it first or --replace to overwrite keys"
	case errors.As(err, &lossy):
		return "restore the other keys with --allow-lossy, into a server of the snapshot's version, or leave those keys out with --databases or --key-pattern"
	case errors.As(err, &pitSel):
		return "--to-time and --to-offset restore every database and key: drop --databases and --key-pattern"
	case errors.As(err, &noJournal):
		return "restore it without --to-time/--to-offset, or see the windows in stash-runner snapshots"
	case errors.As(err, &missingDBs):
		return "fix --databases, or pick another snapshot: see stash-runner snapshots"
	case errors.As(err, &fewDBs):
		return "raise the target's 'databases' setting or leave that database out with --databases"
	case errors.As(err, &noRepl):
		return "use --method " + restore.MethodRestore
	case errors.As(err, &clusterDB) && command == "backup":
		return fmt.Sprintf("drop --databases %d", clusterDB.DB)
	case errors.As(err, &clusterDB):
		return "restore only the databases the cluster has with --databases, raise cluster-databases on Valkey 9, or restore into a standalone server"
	case errors.Is(err, load.ErrKeyAppeared):
		return "restore into a server nobody writes to, or pass --replace to keep the last copy"
	case errors.As(err, &notCluster):
		return "--read-from-replica applies to clusters; for a standalone replica, pass its address"
	case errors.As(err, &noReplica):
		return "back up without --read-from-replica"
	case errors.As(err, &methodError):
		return "use --method " + backup.MethodDump + " or " + backup.MethodAuto
	case errors.As(err, &tlsErr) && tlsErr.Reason == redisconn.TLSUnknownAuthority:
		return "pass the CA with --tls-ca-file"
	case errors.As(err, &tlsErr) && tlsErr.Reason == redisconn.TLSWrongName:
		return "set --tls-server-name to a name in the certificate"
	case errors.As(err, &sentinel), errors.Is(err, redisconn.ErrNoMasterName):
		return "name the master set with --sentinel-master NAME"
	case errors.Is(err, repo.ErrNoPassword):
		return "set RESTIC_PASSWORD or ENCRYPTION_PASSWORD, or use --password-file"
	}
	return ""
}

// hintAll makes every command under root return its errors withHint.
func hintAll(root *cobra.Command) {
	for _, c := range root.Commands() {
		hintAll(c)
		if run := c.RunE; run != nil {
			name := c.Name()
			c.RunE = func(cmd *cobra.Command, args []string) error { return withHint(name, run(cmd, args)) }
		}
	}
}
