package sim

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jittered/retry"
)

func run(t *testing.T, clients int, s Strategy, seed uint64) ThrottleResult {
	t.Helper()
	r, err := Throttle(ThrottleConfig{Clients: clients, Items: 10000, Rate: 1000, Burst: 100, NewPolicy: s.New, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func strategy(t *testing.T, name string) Strategy {
	for _, s := range Strategies() {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no strategy %q", name)
	return Strategy{}
}

// TestRecommendedMeetsTargets is the throttling issue's goal, in the model:
// wall ÷ ideal ≤ 1.05 and attempts ÷ N ≤ 1.2 with zero failures at C = 200
// and C = 1000 (R = 1000/s, burst 100, N = 10,000).
func TestRecommendedMeetsTargets(t *testing.T) {
	for _, c := range []int{200, 1000} {
		for seed := uint64(1); seed <= 3; seed++ {
			r := run(t, c, Strategy{"recommended", Recommended}, seed)
			if r.WallRatio() > 1.05 || r.AttemptsPerItem(10000) > 1.2 || r.Failures != 0 {
				t.Errorf("C=%d seed %d: wall/ideal %.3f attempts/N %.3f failures %d", c, seed, r.WallRatio(), r.AttemptsPerItem(10000), r.Failures)
			}
		}
	}
}

// TestPeersFamilies checks that the model reproduces the two failure
// families the recommended setup is built against: jittered backoff keeps
// the service full but sends many attempts per write; AWS CUBIC sends about
// one attempt per write but collapses its rate; a plain budget gives up.
func TestPeersFamilies(t *testing.T) {
	full := run(t, 200, strategy(t, "full jitter"), 1)
	if full.WallRatio() > 1.15 || full.AttemptsPerItem(10000) < 1.3 {
		t.Errorf("full jitter: wall/ideal %.3f attempts/N %.2f; want fast but wasteful", full.WallRatio(), full.AttemptsPerItem(10000))
	}
	naive := run(t, 200, strategy(t, "naive (2ⁿ, no jitter)"), 1)
	if naive.AttemptsPerItem(10000) <= full.AttemptsPerItem(10000) || naive.WallRatio() <= full.WallRatio() {
		t.Errorf("naive (%.2f attempts, %.3f wall) should do worse than full jitter (%.2f, %.3f)", naive.AttemptsPerItem(10000), naive.WallRatio(), full.AttemptsPerItem(10000), full.WallRatio())
	}
	cubic := run(t, 200, strategy(t, "adaptive (AWS CUBIC)"), 1)
	if cubic.AttemptsPerItem(10000) > 1.1 || cubic.WallRatio() < 1.5 {
		t.Errorf("AWS CUBIC: wall/ideal %.3f attempts/N %.2f; want few attempts and a collapsed rate", cubic.WallRatio(), cubic.AttemptsPerItem(10000))
	}
	budget := run(t, 200, strategy(t, "full jitter + budget"), 1)
	if budget.Failures < 5000 {
		t.Errorf("AWS standard budget under sustained throttling gave up on only %d writes", budget.Failures)
	}
}

func TestThrottleDeterministic(t *testing.T) {
	for _, s := range Strategies()[:2] {
		a, b := run(t, 200, s, 7), run(t, 200, s, 7)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two runs with seed 7 differ", s.Name)
		}
	}
	a, b := run(t, 200, strategy(t, "full jitter"), 1), run(t, 200, strategy(t, "full jitter"), 2)
	if reflect.DeepEqual(a, b) {
		t.Error("seeds 1 and 2 gave identical runs: the seed is not used")
	}
}

func TestThrottleFast(t *testing.T) {
	// The model exists to be run often: the C=200 recommended run takes
	// milliseconds. Measured, not asserted on wall time (machines are noisy):
	// see BenchmarkThrottleModel.
	r := run(t, 200, Strategy{"recommended", Recommended}, 1)
	if r.Attempts < 10000 || len(r.Accepted) == 0 || r.P99 < r.P50 {
		t.Errorf("implausible result %+v", r)
	}
	total := 0
	for _, n := range r.Accepted {
		total += n
	}
	if total != 10000 {
		t.Errorf("accepted series sums to %d, want 10000", total)
	}
}

func TestThrottleConfigErrors(t *testing.T) {
	if _, err := Throttle(ThrottleConfig{Clients: 0, Items: 1, Rate: 1, NewPolicy: Recommended}); err == nil {
		t.Error("zero clients accepted")
	}
	// A policy that never gives up against a service with no capacity is
	// bounded by Limit.
	_, err := Throttle(ThrottleConfig{Clients: 1, Items: 2, Rate: 1e-9, Burst: 0, Limit: time.Minute,
		NewPolicy: func(uint64) *retry.Policy { return &retry.Policy{MaxAttempts: retry.Unlimited} }})
	if err == nil {
		t.Error("an endless run was not stopped by Limit")
	}
}

func BenchmarkThrottleModel(b *testing.B) {
	for _, s := range Strategies() {
		b.Run(s.Name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Throttle(ThrottleConfig{Clients: 200, Items: 10000, Rate: 1000, Burst: 100, NewPolicy: s.New, Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestModelTableFormat checks the table writers on a small comparison.
func TestModelTableFormat(t *testing.T) {
	rows, err := Compare([]Strategy{strategy(t, "full jitter"), {"recommended", Recommended}}, []int{50}, 2000, 1000, 100, 1)
	if err != nil {
		t.Fatal(err)
	}
	var md, txt strings.Builder
	if err := WriteMarkdown(&md, rows); err != nil {
		t.Fatal(err)
	}
	if err := WriteText(&txt, rows); err != nil {
		t.Fatal(err)
	}
	if strings.Count(md.String(), "\n") != len(rows)+2 || !strings.Contains(md.String(), "| 50 | recommended |") {
		t.Errorf("markdown:\n%s", md.String())
	}
	if strings.Count(txt.String(), "\n") != len(rows)+1 || !strings.Contains(txt.String(), "recommended") {
		t.Errorf("text:\n%s", txt.String())
	}
}

// BenchmarkModelTable prints the README's full comparison (every strategy,
// C = 200 and 1000, N = 10,000, seed 1):
//
//	go test ./internal/sim -run '^$' -bench ModelTable -benchtime 1x -v
func BenchmarkModelTable(b *testing.B) {
	for b.Loop() {
		rows, err := Compare(Strategies(), []int{200, 1000}, 10000, 1000, 100, 1)
		if err != nil {
			b.Fatal(err)
		}
		var md strings.Builder
		WriteMarkdown(&md, rows)
		b.Log("\n" + md.String())
	}
}
