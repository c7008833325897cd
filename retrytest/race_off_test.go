//go:build !race

package retrytest_test

const raceEnabled = false
