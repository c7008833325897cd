package sim

import (
	"testing"
	"time"
)

func brookerRun(t *testing.T, clients int, name string) BrookerResult {
	t.Helper()
	for _, s := range BrookerStrategies(5*time.Millisecond, 2*time.Second) {
		if s.Name == name {
			r, err := Brooker(BrookerConfig{Clients: clients, Trials: 20, Base: 5 * time.Millisecond, Cap: 2 * time.Second, Seed: 1}, s)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatalf("no strategy %q", name)
	return BrookerResult{}
}

// TestBrookerReproducesThePost checks the published findings: with no
// backoff the work grows quadratically; exponential backoff without jitter
// barely helps (clients stay synchronized); every jittered mode cuts the
// calls several-fold, full jitter the most or near it; and one client
// always succeeds with a single call. Our budget line bounds the calls, at
// the price of clients that give up.
func TestBrookerReproducesThePost(t *testing.T) {
	if r := brookerRun(t, 1, "none"); r.Calls != 1 {
		t.Errorf("one client: %v calls, want 1", r.Calls)
	}
	none, expo := brookerRun(t, 100, "none"), brookerRun(t, 100, "exponential")
	full, equal, dec := brookerRun(t, 100, "full jitter"), brookerRun(t, 100, "equal jitter"), brookerRun(t, 100, "decorrelated")
	// 100 clients, each write contending: without backoff ~N²/2 calls.
	if none.Calls < 1000 {
		t.Errorf("no backoff: %.0f calls for 100 clients, expected quadratic growth", none.Calls)
	}
	for _, j := range []struct {
		name string
		r    BrookerResult
	}{{"full", full}, {"equal", equal}, {"decorrelated", dec}} {
		if j.r.Calls > expo.Calls*0.6 {
			t.Errorf("%s jitter: %.0f calls, not well below exponential's %.0f", j.name, j.r.Calls, expo.Calls)
		}
	}
	if full.Calls > equal.Calls*1.1 || full.Calls > dec.Calls*1.3 {
		t.Errorf("full jitter %.0f calls should be about the least (equal %.0f, decorrelated %.0f)", full.Calls, equal.Calls, dec.Calls)
	}
	if expo.Time < full.Time {
		t.Errorf("exponential finished before full jitter (%v < %v)", expo.Time, full.Time)
	}
	// Our budget bounds the calls: ≤ clients·(1 + 1.5) + 20.
	b := brookerRun(t, 100, "full jitter + budget")
	if b.Calls > 100*2.5+20+1e-9 || b.GaveUp == 0 {
		t.Errorf("budget: %.0f calls (bound %v), %.0f gave up", b.Calls, 100*2.5+20, b.GaveUp)
	}
}

func TestBrookerDeterministic(t *testing.T) {
	a, b := brookerRun(t, 50, "full jitter"), brookerRun(t, 50, "full jitter")
	if a != b {
		t.Errorf("same seed, different results: %+v %+v", a, b)
	}
}
