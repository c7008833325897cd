//go:build race

package sim

// raceEnabled: the race detector slows the simulation about tenfold; the
// matrix subset then runs only a few scenarios (scripts/test-all.sh runs
// the full subset without -race).
const raceEnabled = true
