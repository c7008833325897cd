//go:build race

package retrytest_test

// raceEnabled: the race detector slows every process several times over,
// and TestMultiProcessLoad's four client processes and the service then
// share two cores; its attempt bound is looser under it, and
// scripts/test-all.sh runs it again without the detector at the tight one.
const raceEnabled = true
