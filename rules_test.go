package retry_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jittered/retry"
)

// Tests that pin rules a mutation once changed without any test failing
// (go run ./tools/dev/cmd/mutate; the list is scripts/mutants.txt).

// Decorrelated jitter's first sleep grows from Base, not from zero:
// base + u·(3·base − base).
func TestDecorrelatedFirstSleepFromBase(t *testing.T) {
	in := retry.JitterInput{Delay: 10 * time.Millisecond, Base: 10 * time.Millisecond, Cap: time.Second}
	if got := retry.DecorrelatedJitter.Apply(in, 0.5); got != 20*time.Millisecond {
		t.Errorf("first decorrelated sleep (u=0.5) = %v, want 20ms (base + (3·base − base)/2)", got)
	}
}

// A misbehaving Rand (returning 1.5) cannot push a jittered delay above the
// schedule's delay; u = 1 gives the delay exactly (the AWS SDKs' vectors pin
// their random number to 1).
func TestJitterUnitClampsLargeU(t *testing.T) {
	in := retry.JitterInput{Delay: 100 * time.Millisecond, Base: 100 * time.Millisecond, Cap: time.Second}
	for _, j := range []retry.Jitter{retry.FullJitter, retry.EqualJitter} {
		for _, u := range []float64{1, 1.5} {
			if got := j.Apply(in, u); got != 100*time.Millisecond {
				t.Errorf("%v.Apply(u=%v) = %v, want the 100ms delay exactly", j, u, got)
			}
		}
	}
}

// Inside Do, decorrelated jitter grows from the previous sleep: with u near
// 1 each sleep is about three times the last (until the cap).
func TestDoDecorrelatedGrows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &retry.Policy{
			MaxAttempts: 4,
			Backoff:     retry.Exponential{Base: 10 * time.Millisecond, Cap: time.Hour},
			Jitter:      retry.DecorrelatedJitter,
			Rand:        func() float64 { return 0.5 },
		}
		var at []time.Time
		_ = p.Do(t.Context(), func(context.Context) error {
			at = append(at, time.Now())
			return errTransient
		})
		// 10 + 0.5·(30−10) = 20 ms; 10 + 0.5·(60−10) = 35 ms; 10 + 0.5·(105−10) = 57.5 ms.
		want := []time.Duration{20 * time.Millisecond, 35 * time.Millisecond, 57500 * time.Microsecond}
		if len(at) != 4 {
			t.Fatalf("%d attempts, want 4", len(at))
		}
		for i, w := range want {
			if got := at[i+1].Sub(at[i]); got != w {
				t.Errorf("sleep %d = %v, want %v", i+1, got, w)
			}
		}
	})
}

// JitterInput.Base is the schedule's first delay, whatever the attempt:
// decorrelated jitter with u = 0 sleeps exactly Base, in NextDelay and in
// the plan.
func TestJitterBaseIsTheFirstDelay(t *testing.T) {
	p := &retry.Policy{
		MaxAttempts: 5,
		Backoff:     retry.Exponential{Base: 10 * time.Millisecond, Cap: time.Second},
		Jitter:      retry.DecorrelatedJitter,
		Rand:        func() float64 { return 0 },
	}
	if got := p.NextDelay(3, false, 40*time.Millisecond); got != 10*time.Millisecond {
		t.Errorf("NextDelay(3) with u=0 = %v, want Base 10ms", got)
	}
	for n, d := range p.Delays() {
		if d != 10*time.Millisecond {
			t.Errorf("Delays: delay %d = %v, want Base 10ms", n, d)
		}
	}
}

// A delay that ends exactly at MaxElapsed, or exactly at the deadline, is
// allowed: the limits are "not after".
func TestLimitsAreInclusive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := &retry.Policy{MaxAttempts: 5, Backoff: retry.Constant{Interval: 100 * time.Millisecond}, Jitter: retry.NoJitter, MaxElapsed: 100 * time.Millisecond}
	r := p.Start(t0)
	if d, gerr := r.FailedAt(t0, errTransient, time.Time{}); gerr != nil || d != 100*time.Millisecond {
		t.Errorf("delay ending exactly at MaxElapsed: %v, %v; want 100ms", d, gerr)
	}
	q := &retry.Policy{MaxAttempts: 5, Backoff: retry.Constant{Interval: 100 * time.Millisecond}, Jitter: retry.NoJitter}
	r = q.Start(t0)
	if d, gerr := r.FailedAt(t0, errTransient, t0.Add(100*time.Millisecond)); gerr != nil || d != 100*time.Millisecond {
		t.Errorf("delay ending exactly at the deadline: %v, %v; want 100ms", d, gerr)
	}
	if _, gerr := r.FailedAt(t0, errTransient, t0.Add(100*time.Millisecond-1)); gerr == nil || gerr.Reason != retry.ReasonDeadline {
		t.Errorf("delay ending 1ns after the deadline: %v, want ReasonDeadline", gerr)
	}
}

// An attempt that runs out of its own time is charged the budget's
// TimeoutCost, not RetryCost.
func TestAttemptTimeoutChargesTimeoutCost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := retry.NewBudget(retry.BudgetConfig{Capacity: 100, RetryCost: 5, TimeoutCost: 10})
		if err != nil {
			t.Fatal(err)
		}
		held := 0.0
		p := &retry.Policy{MaxAttempts: 2, Backoff: retry.Constant{Interval: time.Millisecond}, AttemptTimeout: 50 * time.Millisecond, Budget: b}
		calls := 0
		_ = p.Do(t.Context(), func(ctx context.Context) error {
			calls++
			if calls == 1 {
				<-ctx.Done()
				return ctx.Err()
			}
			held = 100 - b.Tokens()
			return nil
		})
		if held != 10 {
			t.Errorf("the retry after an attempt timeout held %v tokens, want TimeoutCost 10", held)
		}
	})
}

// The refill counts each interval once.
func TestBudgetRefillCountsEachIntervalOnce(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := retry.NewBudget(retry.BudgetConfig{Capacity: 100, RetryCost: 100, RefillRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := b.AcquireAt(t0, retry.KindTransient); !ok {
		t.Fatal("full bucket refused")
	}
	for i, want := range []float64{1, 2, 3, 4} {
		if got := b.TokensAt(t0.Add(time.Duration(i+1) * time.Second)); got != want {
			t.Errorf("tokens after %ds = %v, want %v", i+1, got, want)
		}
	}
}

// A failure cost never takes the bucket below zero.
func TestBudgetFailureCostFloorsAtZero(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, err := retry.NewBudget(retry.BudgetConfig{Capacity: 3, RetryCost: 1, FailureCost: 5, RefillRate: 1})
	if err != nil {
		t.Fatal(err)
	}
	b.FailedAt(t0)
	if got := b.TokensAt(t0); got != 0 {
		t.Errorf("tokens after a failure costing 5 of 3 = %v, want 0", got)
	}
	if got := b.TokensAt(t0.Add(time.Second)); got != 1 {
		t.Errorf("tokens one refill-second later = %v, want 1", got)
	}
}

// ThrottleAttempts: with a limiter pacing, throttles are counted apart from
// MaxAttempts; without a limiter, or with 0, they count like any attempt.
func TestThrottleAttemptsCountedApart(t *testing.T) {
	errThrottle := retry.Throttle(errTransient)
	script := []error{errThrottle, errThrottle, errThrottle, errThrottle, errTransient, errTransient, nil}
	run := func(p *retry.Policy) (int, error) {
		var calls int
		var err error
		synctest.Test(t, func(t *testing.T) {
			err = p.Do(t.Context(), func(context.Context) error {
				calls++
				return script[min(calls, len(script))-1]
			})
		})
		return calls, err
	}
	mk := func(throttleAttempts int, limiter bool) *retry.Policy {
		p := &retry.Policy{MaxAttempts: 3, ThrottleAttempts: throttleAttempts, Backoff: retry.Constant{Interval: time.Millisecond}}
		if limiter {
			l, err := retry.NewAdaptiveLimiter(retry.LimiterConfig{})
			if err != nil {
				t.Fatal(err)
			}
			p.Limiter = l
		}
		return p
	}
	if calls, err := run(mk(5, true)); err != nil || calls != 7 {
		t.Errorf("ThrottleAttempts 5 with a limiter: %d calls, err %v; want success after 7 (4 paced throttles, 3 other attempts)", calls, err)
	}
	if calls, err := run(mk(4, true)); !errors.Is(err, retry.ErrMaxAttempts) || calls != 4 {
		t.Errorf("ThrottleAttempts 4: %d calls, err %v; want ErrMaxAttempts at the 4th throttle", calls, err)
	}
	if calls, err := run(mk(5, false)); !errors.Is(err, retry.ErrMaxAttempts) || calls != 3 {
		t.Errorf("ThrottleAttempts without a limiter: %d calls, err %v; want the plain MaxAttempts 3", calls, err)
	}
	if calls, err := run(mk(0, true)); !errors.Is(err, retry.ErrMaxAttempts) || calls != 3 {
		t.Errorf("ThrottleAttempts 0: %d calls, err %v; want MaxAttempts 3", calls, err)
	}
	if err := (&retry.Policy{ThrottleAttempts: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "Policy.ThrottleAttempts = -1") {
		t.Errorf("Validate with ThrottleAttempts -1: %v", err)
	}
}
