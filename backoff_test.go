package retry_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/jittered/retry"
)

func TestExponentialClosedForm(t *testing.T) {
	e := retry.Exponential{Base: 100 * time.Millisecond, Multiplier: 2, Cap: 10 * time.Second}
	tests := []struct {
		n    int
		want time.Duration
	}{
		{-5, 100 * time.Millisecond}, {0, 100 * time.Millisecond},
		{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond},
		{7, 6400 * time.Millisecond}, {8, 10 * time.Second}, {9, 10 * time.Second},
		{62, 10 * time.Second}, {63, 10 * time.Second}, {64, 10 * time.Second},
		{1e6, 10 * time.Second}, {math.MaxInt, 10 * time.Second},
	}
	for _, tt := range tests {
		if got := e.Delay(tt.n); got != tt.want {
			t.Errorf("Delay(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
	// Against the closed form min(cap, base·mⁿ⁻¹) for every n until the cap.
	for n := 1; n < 200; n++ {
		want := time.Duration(math.Min(float64(10*time.Second), float64(100*time.Millisecond)*math.Pow(2, float64(n-1))))
		if got := e.Delay(n); got != want {
			t.Fatalf("Delay(%d) = %v, want closed form %v", n, got, want)
		}
	}
}

func TestExponentialDefaultsAndHugeCap(t *testing.T) {
	e := retry.Exponential{Base: time.Millisecond}
	if got := e.Delay(2); got != 2*time.Millisecond {
		t.Errorf("default multiplier: Delay(2) = %v, want 2ms", got)
	}
	if got := e.Max(); got != retry.DefaultCap {
		t.Errorf("default cap = %v, want %v", got, retry.DefaultCap)
	}
	// A cap at the largest Duration: no overflow into negatives.
	big := retry.Exponential{Base: time.Nanosecond, Multiplier: 10, Cap: math.MaxInt64}
	for _, n := range []int{18, 19, 20, 62, 63, 64, 1e6, math.MaxInt} {
		// Delay(n) = Base·10^(n−1): 10^19 ns and beyond overflow int64.
		want := time.Duration(math.MaxInt64)
		switch n {
		case 18:
			want = 1e17
		case 19:
			want = 1e18
		}
		if got := big.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
	if got := big.Delay(math.MaxInt); got != math.MaxInt64 {
		t.Errorf("Delay(MaxInt) = %v, want the cap", got)
	}
}

func TestLinearClosedForm(t *testing.T) {
	l := retry.Linear{Base: time.Second, Step: 500 * time.Millisecond, Cap: 5 * time.Second}
	for _, tt := range []struct {
		n    int
		want time.Duration
	}{{1, time.Second}, {2, 1500 * time.Millisecond}, {9, 5 * time.Second}, {10, 5 * time.Second},
		{62, 5 * time.Second}, {63, 5 * time.Second}, {64, 5 * time.Second}, {1e6, 5 * time.Second}, {math.MaxInt, 5 * time.Second}} {
		if got := l.Delay(tt.n); got != tt.want {
			t.Errorf("Delay(%d) = %v, want %v", tt.n, got, tt.want)
		}
	}
	for n := 1; n < 20; n++ {
		want := min(5*time.Second, time.Second+time.Duration(n-1)*500*time.Millisecond)
		if got := l.Delay(n); got != want {
			t.Fatalf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
	huge := retry.Linear{Base: time.Nanosecond, Step: time.Hour, Cap: math.MaxInt64}
	if got := huge.Delay(math.MaxInt); got != math.MaxInt64 {
		t.Errorf("huge Linear Delay(MaxInt) = %v, want saturation at cap", got)
	}
}

func TestConstant(t *testing.T) {
	c := retry.Constant{Interval: 3 * time.Second}
	for _, n := range []int{1, 2, 62, 63, 64, 1e6, math.MaxInt} {
		if got := c.Delay(n); got != 3*time.Second {
			t.Errorf("Delay(%d) = %v", n, got)
		}
	}
}

func TestScheduleValidate(t *testing.T) {
	tests := []struct {
		name  string
		p     retry.Policy
		field string
	}{
		{"zero base", retry.Policy{Backoff: retry.Exponential{}}, "Exponential.Base"},
		{"negative base", retry.Policy{Backoff: retry.Exponential{Base: -1}}, "Exponential.Base"},
		{"multiplier below 1", retry.Policy{Backoff: retry.Exponential{Base: 1, Multiplier: 0.5}}, "Exponential.Multiplier"},
		{"NaN multiplier", retry.Policy{Backoff: retry.Exponential{Base: 1, Multiplier: math.NaN()}}, "Exponential.Multiplier"},
		{"Inf multiplier", retry.Policy{Backoff: retry.Exponential{Base: 1, Multiplier: math.Inf(1)}}, "Exponential.Multiplier"},
		{"cap below base", retry.Policy{Backoff: retry.Exponential{Base: time.Second, Cap: time.Millisecond}}, "Exponential.Cap"},
		{"negative attempts", retry.Policy{MaxAttempts: -2}, "Policy.MaxAttempts"},
		{"negative constant", retry.Policy{Backoff: retry.Constant{Interval: -1}}, "Constant.Interval"},
		{"linear zero base", retry.Policy{Backoff: retry.Linear{}}, "Linear.Base"},
		{"percent out of range", retry.Policy{Jitter: retry.PercentJitter(1.5)}, "PercentJitter.p"},
		{"percent NaN", retry.Policy{Jitter: retry.PercentJitter(math.NaN())}, "PercentJitter.p"},
		{"negative elapsed", retry.Policy{MaxElapsed: -time.Second}, "Policy.MaxElapsed"},
		{"negative timeout", retry.Policy{AttemptTimeout: -time.Second}, "Policy.AttemptTimeout"},
		{"hint spread", retry.Policy{HintSpread: 2}, "Policy.HintSpread"},
		{"throttle backoff", retry.Policy{ThrottleBackoff: retry.Exponential{Base: -3}}, "Exponential.Base"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			if !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), "must") {
				t.Errorf("error %q does not name %s and what is allowed", err, tt.field)
			}
		})
	}
	var zero retry.Policy
	if err := zero.Validate(); err != nil {
		t.Errorf("zero Policy: %v", err)
	}
	ok := retry.Policy{MaxAttempts: retry.Unlimited, Backoff: retry.Exponential{Base: time.Millisecond, Multiplier: 1.5, Cap: time.Second}, Jitter: retry.PercentJitter(0.2), HintSpread: retry.NoSpread}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid Policy: %v", err)
	}
}

func FuzzExponential(f *testing.F) {
	f.Add(int64(time.Millisecond), 2.0, int64(time.Second), 5, 0.5)
	f.Add(int64(1), 1e300, int64(math.MaxInt64), math.MaxInt, 0.999)
	f.Add(int64(-1), math.NaN(), int64(-5), -3, -1.0)
	f.Fuzz(func(t *testing.T, base int64, mult float64, limit int64, n int, u float64) {
		e := retry.Exponential{Base: time.Duration(base), Multiplier: mult, Cap: time.Duration(limit)}
		d := e.Delay(n)
		if d < 0 || d > e.Max() {
			t.Fatalf("%+v Delay(%d) = %v outside [0, %v]", e, n, d, e.Max())
		}
		if e.Validate() == nil && n > 1 && e.Delay(n-1) > d {
			t.Fatalf("%+v not monotone at %d: %v > %v", e, n, e.Delay(n-1), d)
		}
		for _, j := range []retry.Jitter{retry.NoJitter, retry.FullJitter, retry.EqualJitter, retry.DecorrelatedJitter, retry.PercentJitter(0.3)} {
			in := retry.JitterInput{Delay: d, Prev: time.Duration(limit / 2), Base: e.Delay(1), Cap: e.Max()}
			if got := j.Apply(in, u); got < 0 || got > e.Max() {
				t.Fatalf("jitter %v(%+v, %v) = %v outside [0, %v]", j, in, u, got, e.Max())
			}
		}
	})
}

func FuzzLinear(f *testing.F) {
	f.Add(int64(time.Millisecond), int64(time.Millisecond), int64(time.Second), 5)
	f.Add(int64(1), int64(math.MaxInt64), int64(math.MaxInt64), math.MaxInt)
	f.Fuzz(func(t *testing.T, base, step, limit int64, n int) {
		l := retry.Linear{Base: time.Duration(base), Step: time.Duration(step), Cap: time.Duration(limit)}
		if d := l.Delay(n); d < 0 || d > l.Max() {
			t.Fatalf("%+v Delay(%d) = %v outside [0, %v]", l, n, d, l.Max())
		}
	})
}
