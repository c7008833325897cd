package retry_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jittered/retry"
)

func TestJitterExact(t *testing.T) {
	in := retry.JitterInput{Delay: 800 * time.Millisecond, Prev: 300 * time.Millisecond, Base: 100 * time.Millisecond, Cap: time.Second}
	tests := []struct {
		j    retry.Jitter
		u    float64
		want time.Duration
	}{
		{retry.NoJitter, 0.7, 800 * time.Millisecond},
		{retry.FullJitter, 0, 0},
		{retry.FullJitter, 0.25, 200 * time.Millisecond},
		{retry.EqualJitter, 0, 400 * time.Millisecond},
		{retry.EqualJitter, 0.5, 600 * time.Millisecond},
		{retry.DecorrelatedJitter, 0, 100 * time.Millisecond},                                                   // base
		{retry.DecorrelatedJitter, 0.5, 500 * time.Millisecond},                                                 // base + (900-100)/2
		{retry.DecorrelatedJitter, 0.99, 892 * time.Millisecond},                                                // base + 0.99·(900−100)
		{retry.PercentJitter(0.2), 0.5, 800 * time.Millisecond},                                                 // centre
		{retry.PercentJitter(0.2), 0, 640 * time.Millisecond},                                                   // −20 %
		{retry.PercentJitter(0.5), 0.99, time.Second},                                                           // +49 % capped
		{retry.FullJitter, math.NaN(), 0},                                                                       // garbage u
		{retry.FullJitter, 7, 800 * time.Millisecond},                                                           // u > 1 clamps to 1
		{retry.JitterFunc(func(retry.JitterInput, float64) time.Duration { return time.Hour }), 0, time.Second}, // clamped to cap
	}
	for _, tt := range tests {
		if got := tt.j.Apply(in, tt.u); got != tt.want {
			t.Errorf("%v.Apply(u=%v) = %v, want %v", tt.j, tt.u, got, tt.want)
		}
	}
	// Cap applies before jitter: a delay above the cap is first capped.
	over := retry.JitterInput{Delay: time.Hour, Base: time.Second, Cap: 2 * time.Second}
	if got := retry.EqualJitter.Apply(over, 0); got != time.Second {
		t.Errorf("equal jitter of an over-cap delay = %v, want cap/2", got)
	}
}

// TestJitterStatistics draws 20,000 samples per mode with a fixed seed and
// checks the range and the mean against the distribution's.
func TestJitterStatistics(t *testing.T) {
	const n = 20000
	d := 1000 * time.Millisecond
	base := 100 * time.Millisecond
	capd := 10 * time.Second
	prev := 2 * time.Second
	tests := []struct {
		j        retry.Jitter
		lo, hi   time.Duration
		wantMean float64 // in ms
	}{
		{retry.FullJitter, 0, d, 500},
		{retry.EqualJitter, d / 2, d, 750},
		{retry.DecorrelatedJitter, base, 3 * prev, (100 + 6000) / 2.0},
		{retry.PercentJitter(0.2), 800 * time.Millisecond, 1200 * time.Millisecond, 1000},
		{retry.NoJitter, d, d, 1000},
	}
	for _, tt := range tests {
		r := rand.New(rand.NewPCG(1, 2))
		var sum float64
		for range n {
			got := tt.j.Apply(retry.JitterInput{Delay: d, Prev: prev, Base: base, Cap: capd}, r.Float64())
			if got < tt.lo || got > tt.hi {
				t.Fatalf("%v: %v outside [%v, %v]", tt.j, got, tt.lo, tt.hi)
			}
			sum += float64(got) / 1e6
		}
		mean := sum / n
		width := float64(tt.hi-tt.lo) / 1e6
		// Standard error of a uniform mean is width/√(12n) ≈ 0.002·width; allow 5σ.
		if tol := 5 * width / math.Sqrt(12*n); math.Abs(mean-tt.wantMean) > tol+1e-9 {
			t.Errorf("%v: mean %.2fms, want %.2fms ± %.2f", tt.j, mean, tt.wantMean, tol)
		}
	}
}

func TestNewRandReproducible(t *testing.T) {
	a, b := retry.NewRand(42), retry.NewRand(42)
	for range 100 {
		x, y := a(), b()
		if x != y || x < 0 || x >= 1 {
			t.Fatalf("NewRand(42) diverged or out of range: %v %v", x, y)
		}
	}
	p := retry.Policy{MaxAttempts: 6, Rand: retry.NewRand(7)}
	q := retry.Policy{MaxAttempts: 6, Rand: retry.NewRand(7)}
	var ds, es []time.Duration
	for _, d := range p.Delays() {
		ds = append(ds, d)
	}
	for _, d := range q.Delays() {
		es = append(es, d)
	}
	if len(ds) != 5 || len(es) != 5 {
		t.Fatalf("Delays yielded %d and %d, want 5", len(ds), len(es))
	}
	for i := range ds {
		if ds[i] != es[i] {
			t.Fatalf("same seed, different delays: %v vs %v", ds, es)
		}
	}
}

func TestDecorrelatedCapped(t *testing.T) {
	in := retry.JitterInput{Prev: 900 * time.Millisecond, Base: 100 * time.Millisecond, Cap: time.Second}
	if got := retry.DecorrelatedJitter.Apply(in, 0.5); got != time.Second {
		t.Errorf("decorrelated with 3·prev ≫ cap = %v, want the cap", got)
	}
	in.Prev = math.MaxInt64 // 3·prev overflows int64; the float path must not
	if got := retry.DecorrelatedJitter.Apply(in, 0.5); got != time.Second {
		t.Errorf("decorrelated with huge prev = %v, want the cap", got)
	}
}
