// Package version holds the version of the kubectl-stash binaries, set at link time.
package version

// Version is set with -ldflags "-X stash.dev/redis/version.Version=...".
var Version = "dev"
