//go:build !race

package dataset_test

// raceEnabled says the race detector slows this build down many times: timings are not
// asserted then.
const raceEnabled = false
