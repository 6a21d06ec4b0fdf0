package backup

import "fmt"

// The refusals of a backup, as types that carry the facts. Their messages name no flag and
// no API field: stash-runner's commands (runner/cli) and the in-cluster session
// (runner/session) each add the next step in their own user's words.

// NotClusterError is reading from replicas (Options.ReadFromReplica) asked of a server that
// is not a Redis Cluster: a standalone replica is backed up by its own address.
type NotClusterError struct{ Addr string }

func (e *NotClusterError) Error() string {
	return fmt.Sprintf("redis %s is not a cluster: reading from replicas applies to the masters of a cluster", e.Addr)
}

// NoHealthyReplicaError is a cluster master without a healthy replica to read from
// (Options.ReadFromReplica).
type NoHealthyReplicaError struct{ Master string }

func (e *NoHealthyReplicaError) Error() string {
	return fmt.Sprintf("cluster master %s has no healthy replica to read from", e.Master)
}

// ClusterMethodError is a method that cannot back up a Redis Cluster yet.
type ClusterMethodError struct{ Addr, Method string }

func (e *ClusterMethodError) Error() string {
	return fmt.Sprintf("backup of %s: method %s does not support cluster mode yet", e.Addr, e.Method)
}
