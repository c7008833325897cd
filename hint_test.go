package retry_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jittered/retry"
)

// slackHint is a server hint with the AWS SDKs' bound: at most the
// schedule's delay plus slack.
type slackHint struct {
	d, slack time.Duration
}

func (h slackHint) Error() string                     { return "throttled" }
func (h slackHint) RetryAfter() (time.Duration, bool) { return h.d, true }
func (h slackHint) HintSlack() time.Duration          { return h.slack }

// hintedDelays runs one call whose first len(errs) attempts fail with errs
// and returns the delay before each retry.
func hintedDelays(t *testing.T, p *retry.Policy, errs ...error) []time.Duration {
	t.Helper()
	var got []time.Duration
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		last := time.Now()
		err := p.Do(t.Context(), func(context.Context) error {
			now := time.Now()
			if calls > 0 {
				got = append(got, now.Sub(last))
			}
			last = now
			calls++
			if calls <= len(errs) {
				return errs[calls-1]
			}
			return nil
		})
		if err != nil {
			t.Errorf("Do: %v", err)
		}
	})
	return got
}

func TestHintIsAFloorOverTheSchedule(t *testing.T) {
	p := noJitter(10, 100*time.Millisecond) // 100, 200, 400, 800 ms
	p.HintSpread = retry.NoSpread
	cases := []struct {
		name string
		err  error
		want time.Duration // before the first retry
	}{
		{"zero hint: the schedule", retry.RetryAfter(0, errTransient), 100 * time.Millisecond},
		{"negative hint: the schedule", retry.RetryAfter(-time.Second, errTransient), 100 * time.Millisecond},
		{"shorter hint: the schedule", retry.RetryAfter(time.Millisecond, errTransient), 100 * time.Millisecond},
		{"longer hint: the hint", retry.RetryAfter(300*time.Millisecond, errTransient), 300 * time.Millisecond},
		{"hint above MaxHint: MaxHint", retry.RetryAfter(time.Hour, errTransient), retry.DefaultMaxHint},
		{"slack: at most schedule + slack", slackHint{d: 30 * time.Second, slack: 5 * time.Second}, 5*time.Second + 100*time.Millisecond},
		{"slack: a hint within it is obeyed", slackHint{d: 2 * time.Second, slack: 5 * time.Second}, 2 * time.Second},
		{"slack: a short hint is still floored", slackHint{d: time.Millisecond, slack: 5 * time.Second}, 100 * time.Millisecond},
		{"zero slack: no bound but MaxHint", slackHint{d: time.Hour, slack: 0}, retry.DefaultMaxHint},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := hintedDelays(t, p, c.err)
			if len(got) != 1 || got[0] != c.want {
				t.Errorf("delay %v, want [%v]", got, c.want)
			}
		})
	}
	// The schedule keeps growing under hints: the fourth retry waits 800 ms
	// although every answer said "retry now".
	zero := retry.RetryAfter(0, errTransient)
	got := hintedDelays(t, p, zero, zero, zero, zero)
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	if len(got) != len(want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("delays %v, want %v", got, want)
			break
		}
	}
}

// A hint is clamped to MaxHint before it is spread, so clients told the same
// long hint come back spread over [MaxHint, MaxHint·(1+HintSpread)].
func TestHintSpreadAboveTheClamp(t *testing.T) {
	var seen []time.Duration
	for i, u := range []float64{0, 0.2, 0.4, 0.6, 0.8, 0.999} {
		p := noJitter(3, time.Millisecond)
		p.MaxHint = 20 * time.Second
		p.HintSpread = 0.1
		p.Rand = func() float64 { return u }
		got := hintedDelays(t, p, retry.RetryAfter(time.Hour, errTransient))
		if len(got) != 1 {
			t.Fatalf("client %d: delays %v", i, got)
		}
		want := 20*time.Second + time.Duration(float64(2*time.Second)*u)
		if d := got[0] - want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("client %d (u=%v): came back after %v, want %v", i, u, got[0], want)
		}
		if got[0] > 22*time.Second {
			t.Errorf("client %d: %v above MaxHint·(1+HintSpread) = 22s", i, got[0])
		}
		seen = append(seen, got[0])
	}
	if seen[0] == seen[len(seen)-1] {
		t.Errorf("six clients told Retry-After: 3600 all came back at %v", seen[0])
	}
}

// A slack hint at the edge of Duration does not overflow.
func TestHintSlackNoOverflow(t *testing.T) {
	p := &retry.Policy{
		MaxAttempts: 2,
		Backoff:     retry.Constant{Interval: math.MaxInt64 - time.Second},
		Jitter:      retry.NoJitter,
		MaxHint:     math.MaxInt64,
		HintSpread:  retry.NoSpread,
	}
	r := p.Start(time.Time{})
	d, gerr := r.FailedAt(time.Time{}, slackHint{d: math.MaxInt64, slack: 5 * time.Second}, time.Time{})
	if gerr != nil || d != math.MaxInt64 {
		t.Errorf("delay %v (%v), want the largest Duration", d, gerr)
	}
}

// The storm the old rule allowed: a server answering "Retry-After: 0" to a
// policy with a 50 ms base and MaxElapsed 200 ms got 282,779 attempts in
// 50 ms. Now it gets what the schedule allows: 50+100 ms, then the next
// (200 ms) would pass MaxElapsed.
func TestRetryAfterZeroIsNoStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &retry.Policy{
			MaxAttempts: retry.Unlimited,
			Backoff:     retry.Exponential{Base: 50 * time.Millisecond},
			Jitter:      retry.NoJitter,
			MaxElapsed:  200 * time.Millisecond,
		}
		calls := 0
		err := p.Do(t.Context(), func(context.Context) error {
			calls++
			return retry.RetryAfter(0, errTransient)
		})
		if calls != 3 || !errors.Is(err, retry.ErrMaxElapsed) {
			t.Errorf("%d attempts, err %v; want 3 attempts (0, 50, 150 ms) and ErrMaxElapsed", calls, err)
		}
	})
}

// FuzzHintBounds: whatever the hint, its slack and the policy's bounds, the
// delay is the schedule's at least, and at most the larger of the schedule's
// and MaxHint·(1+HintSpread) — and with a slack, at most schedule + slack.
func FuzzHintBounds(f *testing.F) {
	f.Add(int64(0), int64(0), int64(20e9), 0.1, 0.5, int64(50e6))
	f.Add(int64(math.MaxInt64), int64(5e9), int64(math.MaxInt64), 1.0, 0.999, int64(math.MaxInt64-1))
	f.Add(int64(-1), int64(-1), int64(1), -1.0, 0.0, int64(0))
	f.Fuzz(func(t *testing.T, h, slack, maxHint int64, spread, u float64, interval int64) {
		if maxHint < 0 || interval < 0 || !(spread >= 0 && spread <= 1) && spread != retry.NoSpread {
			return // invalid policies are refused; TestDoInvalidPolicy covers them
		}
		p := &retry.Policy{
			MaxAttempts: 2,
			Backoff:     retry.Constant{Interval: time.Duration(interval)},
			Jitter:      retry.NoJitter,
			MaxHint:     time.Duration(maxHint),
			HintSpread:  spread,
			Rand:        func() float64 { return u },
		}
		r := p.Start(time.Time{})
		d, gerr := r.FailedAt(time.Time{}, slackHint{d: time.Duration(h), slack: time.Duration(slack)}, time.Time{})
		if gerr != nil {
			t.Fatalf("gave up: %v", gerr)
		}
		sched := time.Duration(interval)
		mh := time.Duration(maxHint)
		if mh == 0 {
			mh = retry.DefaultMaxHint
		}
		s := spread
		switch {
		case s == 0:
			s = retry.DefaultHintSpread
		case s < 0:
			s = 0
		}
		upper := max(float64(sched), float64(mh)*(1+s))
		if d < sched || float64(d) > upper*(1+1e-9) {
			t.Errorf("delay %v outside [schedule %v, max(schedule, MaxHint·(1+spread)) %v]", d, sched, time.Duration(upper))
		}
		if slack > 0 && sched <= math.MaxInt64-time.Duration(slack) && d > max(sched, sched+time.Duration(slack)) {
			t.Errorf("delay %v above schedule %v + slack %v", d, sched, time.Duration(slack))
		}
		// The hint is obeyed: at least min(hint, MaxHint), within the slack.
		floor := min(time.Duration(h), mh)
		if slack > 0 && sched <= math.MaxInt64-time.Duration(slack) {
			floor = min(floor, sched+time.Duration(slack))
		}
		if h > 0 && d < floor {
			t.Errorf("delay %v below the hint's floor %v (hint %v, MaxHint %v, schedule %v)", d, floor, time.Duration(h), mh, sched)
		}
	})
}

// A hint at the largest Duration, with MaxHint as large, is spread without
// overflowing into a negative delay (which would have fallen back to the
// schedule: a hostile server's huge hint turned into an immediate retry).
func TestHugeHintSpreadDoesNotOverflow(t *testing.T) {
	p := &retry.Policy{
		MaxAttempts: 2,
		Backoff:     retry.Constant{Interval: time.Millisecond},
		Jitter:      retry.NoJitter,
		MaxHint:     math.MaxInt64,
		HintSpread:  0.1,
		Rand:        func() float64 { return 0.5 },
	}
	r := p.Start(time.Time{})
	d, gerr := r.FailedAt(time.Time{}, retry.RetryAfter(math.MaxInt64/2, errTransient), time.Time{})
	if gerr != nil || d < math.MaxInt64/2 {
		t.Errorf("delay %v (%v), want at least the hint %v", d, gerr, time.Duration(math.MaxInt64/2))
	}
	r2 := p.Start(time.Time{})
	d, _ = r2.FailedAt(time.Time{}, retry.RetryAfter(math.MaxInt64, errTransient), time.Time{})
	if d != math.MaxInt64 {
		t.Errorf("delay for a MaxInt64 hint %v, want the largest Duration", d)
	}
}
