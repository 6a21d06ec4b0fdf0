package v1alpha1

import "fmt"

// The rules of Redis and of a restore that admission (validation.go), stash-runner's flags
// (runner/cli) and its libraries (runner/restore, runner/backup, runner/load) must state
// alike. Each is decided here once and returned as a typed error that carries the facts;
// each caller phrases the next step in its own user's words (a flag, a spec field).

// clusterOnlyDatabase0 is the rule ClusterDatabaseError states for a cluster of Redis.
const clusterOnlyDatabase0 = "a Redis Cluster has only database 0"

// ClusterDatabaseError is a database a Redis Cluster does not have: Redis's clusters have
// only database 0, Valkey 9's have cluster-databases (Databases, 0 or 1 meaning only 0).
// +kubebuilder:object:generate=false
type ClusterDatabaseError struct{ DB, Databases int }

func (e *ClusterDatabaseError) Error() string {
	if e.Databases <= 1 {
		return fmt.Sprintf("database %d: %s", e.DB, clusterOnlyDatabase0)
	}
	return fmt.Sprintf("database %d: the cluster has only databases 0 to %d (cluster-databases on Valkey 9)", e.DB, e.Databases-1)
}

// CheckClusterDatabase returns a *ClusterDatabaseError unless a cluster with databases
// databases (0 when unknown: database 0 alone) has db.
func CheckClusterDatabase(db, databases int) error {
	if db >= max(databases, 1) {
		return &ClusterDatabaseError{DB: db, Databases: databases}
	}
	return nil
}

// PointInTimeSelectionError is a restore to a point in time asked to select databases or
// keys: it replays every command of the journal, so it cannot leave any out.
// +kubebuilder:object:generate=false
type PointInTimeSelectionError struct {
	// Databases and KeyPattern say which selections were asked for.
	Databases, KeyPattern bool
}

func (e *PointInTimeSelectionError) Error() string {
	return "a restore to a point in time replays every command of the journal: it cannot select databases or keys"
}

// CheckPointInTimeSelection returns a *PointInTimeSelectionError when a restore to a point
// in time is asked to select databases (any in databases) or keys (a keyPattern).
func CheckPointInTimeSelection(databases int, keyPattern string) error {
	if databases == 0 && keyPattern == "" {
		return nil
	}
	return &PointInTimeSelectionError{Databases: databases > 0, KeyPattern: keyPattern != ""}
}
