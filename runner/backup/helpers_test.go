package backup_test

import "stash.dev/redis/test/runnertest"

// The runner's shared test helpers, by the short names this package's tests use.
var (
	openRepo         = runnertest.OpenRepo
	conn             = runnertest.Conn
	fill             = runnertest.Fill
	ttls             = runnertest.TTLs
	assertNoSnapshot = runnertest.AssertNoSnapshot
)
