package retry_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jittered/retry"
)

func mustLimiter(t testing.TB, c retry.LimiterConfig) *retry.AdaptiveLimiter {
	t.Helper()
	l, err := retry.NewAdaptiveLimiter(c)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// feed drives a Goodput limiter against a service of capacity r/s (with a
// burst) in explicit time from start for d, with as much demand as the
// limiter lets through; it returns the limiter's rate at the end and the
// throttled fraction.
func feed(l *retry.AdaptiveLimiter, start time.Time, d time.Duration, r float64) (float64, float64) {
	tokens, last := 10.0, start
	sent, throttled := 0, 0
	var ticket retry.Ticket
	now := start
	for now.Before(start.Add(d)) {
		var wait time.Duration
		if ticket != 0 {
			wait = l.WaitAt(now, ticket)
		} else {
			ticket, wait, _ = l.ReserveAt(now, time.Time{}, time.Time{})
			if wait == 0 {
				ticket = 0
			}
		}
		if wait > 0 {
			now = now.Add(wait)
			continue
		}
		ticket = 0
		tokens = min(10, tokens+now.Sub(last).Seconds()*r)
		last = now
		sent++
		ok := tokens >= 1
		if ok {
			tokens--
		} else {
			throttled++
		}
		l.ObserveAt(now, outcome(!ok))
		now = now.Add(100 * time.Microsecond) // a client that can send 10,000/s
	}
	rate, _ := l.Rate()
	return rate, float64(throttled) / float64(sent)
}

func outcome(throttled bool) retry.Outcome {
	if throttled {
		return retry.OutcomeThrottled
	}
	return retry.OutcomeAccepted
}

func TestGoodputTracksCapacity(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{})
	if _, limiting := l.Rate(); limiting {
		t.Fatal("limiting before any throttle")
	}
	rate, frac := feed(l, t0, 5*time.Second, 1000)
	if rate < 1000 || rate > 1150 || frac > 0.08 {
		// Measured: 1045/s, 5.1 % of attempts throttled (start included).
		t.Errorf("after 5s at capacity 1000/s: rate %.0f, throttled %.1f%%; want within [1000, 1150], ≤ 8%%", rate, 100*frac)
	}
	// Capacity halves: the rate follows within a couple of seconds.
	rate, _ = feed(l, t0.Add(5*time.Second), 3*time.Second, 500)
	if rate < 500 || rate > 600 {
		t.Errorf("after capacity fell to 500/s: rate %.0f", rate)
	}
	// Capacity recovers: the rate climbs back.
	rate, frac = feed(l, t0.Add(8*time.Second), 5*time.Second, 1000)
	if rate < 950 || rate > 1150 || frac > 0.1 {
		t.Errorf("after capacity recovered: rate %.0f, throttled %.1f%%", rate, 100*frac)
	}
}

func TestCUBICCollapsesOnThrottleStorm(t *testing.T) {
	// The AWS algorithm multiplies by β on every throttle: 20 throttles in a
	// row take the rate to its floor. (Goodput counts them as one event.)
	l := mustLimiter(t, retry.AWSAdaptive)
	g := mustLimiter(t, retry.LimiterConfig{})
	for i := range 1000 { // 1000 successes over 1 s
		l.ObserveAt(at(i), retry.OutcomeAccepted)
		g.ObserveAt(at(i), retry.OutcomeAccepted)
	}
	for i := range 20 {
		l.ObserveAt(at(1000+i), retry.OutcomeThrottled)
		g.ObserveAt(at(1000+i), retry.OutcomeThrottled)
	}
	lr, _ := l.Rate()
	gr, _ := g.Rate()
	if lr > 10 {
		t.Errorf("CUBIC after a storm of 20 throttles: %.1f/s, expected near its floor", lr)
	}
	if gr < 500 {
		t.Errorf("Goodput after the same storm: %.1f/s, want about the accepted rate", gr)
	}
}

func TestLimiterWaitCanceled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLimiter(t, retry.LimiterConfig{MinRate: 1})
		l.Observe(retry.OutcomeThrottled) // limiting at the floor: 1/s
		l.Wait(t.Context())
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(100 * time.Millisecond); cancel() }()
		start := time.Now()
		ok, err := l.Wait(ctx)
		if ok || !errors.Is(err, context.Canceled) || time.Since(start) != 100*time.Millisecond {
			t.Errorf("Wait = %v, %v after %v; want false, Canceled at once on cancel", ok, err, time.Since(start))
		}
	})
}

func TestLimiterDeadlineRule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLimiter(t, retry.AWSAdaptive) // CUBIC: at its floor of 0.5/s after a throttle
		l.Observe(retry.OutcomeThrottled)
		p := &retry.Policy{Limiter: l}
		if err := p.Do(t.Context(), func(context.Context) error { return nil }); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		calls := 0
		start := time.Now()
		err := p.Do(ctx, func(context.Context) error { calls++; return nil })
		if calls != 0 || time.Since(start) != 0 || !errors.Is(err, retry.ErrDeadline) || !strings.Contains(err.Error(), "client-side") {
			t.Errorf("calls %d after %v, err %v: want an immediate client-side give-up", calls, time.Since(start), err)
		}
	})
}

// TestGoodputDeadlineOnlyWhenCertain: Goodput refuses a slot only when it
// would begin after the deadline even if the rate doubled every Interval
// (the fastest the law grows): 50 places ahead at 10/s take at least
// 0.1 s·log2(1 + 50/1) = 567 ms.
func TestGoodputDeadlineOnlyWhenCertain(t *testing.T) {
	l := mustLimiter(t, retry.LimiterConfig{MinRate: 10})
	l.ObserveAt(t0, retry.OutcomeThrottled) // limiting at 10/s
	for range 50 {
		l.ReserveAt(t0, time.Time{}, time.Time{})
	}
	if _, w, ok := l.ReserveAt(t0, time.Time{}, t0.Add(560*time.Millisecond)); ok || w < 560*time.Millisecond || w > 570*time.Millisecond {
		t.Errorf("deadline 560ms: granted %v (wait %v); want refused, best case ≈ 567ms", ok, w)
	}
	if _, _, ok := l.ReserveAt(t0, time.Time{}, t0.Add(600*time.Millisecond)); !ok {
		t.Error("deadline 600ms: refused although a doubling rate could make it")
	}
}

func TestDoWithLimiterPacesFirstAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLimiter(t, retry.LimiterConfig{MinRate: 10, Burst: 0.001})
		l.Observe(retry.OutcomeThrottled) // rate 10/s
		p := &retry.Policy{Limiter: l}
		start := time.Now()
		for range 11 {
			if err := p.Do(t.Context(), func(context.Context) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		// From 10/s, probing upward by 20 % per busy interval (no capacity
		// measured yet): about 0.6 s, where no limiter would take 0.
		if got := time.Since(start); got < 400*time.Millisecond || got > time.Second {
			t.Errorf("11 first attempts starting at 10/s took %v, want 0.4–1s", got)
		}
	})
}

// service is a token bucket of rate r/s (burst 20) in the bubble's time: the
// fake service of the hammer test.
type service struct {
	mu     sync.Mutex
	r      float64
	tokens float64
	last   time.Time
}

func (s *service) call(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if !s.last.IsZero() {
		s.tokens = min(20, s.tokens+now.Sub(s.last).Seconds()*s.r)
	}
	s.last = now
	if s.tokens >= 1 {
		s.tokens--
		return nil
	}
	return retry.Throttle(errTransient)
}

// TestHammerSharedBudgetAndLimiter: 1000 goroutines share one budget and one
// limiter against a throttling service, under -race. Every path of the
// budget's accounting runs concurrently; afterwards the tokens add up.
func TestHammerSharedBudgetAndLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBudget(t, retry.AWSStandardBudget)
		l := mustLimiter(t, retry.LimiterConfig{})
		p := &retry.Policy{MaxAttempts: 10, Budget: b, Limiter: l, Backoff: retry.Exponential{Base: time.Millisecond, Cap: 10 * time.Millisecond}}
		svc := &service{r: 5000, tokens: 20}
		var ok, refused atomic.Int64
		var consumed, rewards atomic.Int64 // budget tokens, from each call's own attempts
		var wg sync.WaitGroup
		for i := range 1000 {
			wg.Go(func() {
				// Arrivals 10 µs apart (100,000/s, twenty times what the
				// service accepts): each first attempt's answer is observed
				// before the next caller starts, as on a real clock. Started
				// at one instant, how many first attempts pass the still
				// calm limiter before the first throttle is observed would
				// depend on the scheduler; when it is hundreds, the budget
				// rightly refuses most of their retries.
				time.Sleep(time.Duration(i) * 10 * time.Microsecond)
				var errs []error // each attempt's outcome, in order
				err := p.Do(t.Context(), func(ctx context.Context) error {
					e := svc.call(ctx)
					errs = append(errs, e)
					return e
				})
				if errs[0] == nil {
					rewards.Add(1) // FirstTryReward
				}
				// Retry i+1 took the cost of failure i's kind; it is consumed
				// when that retry failed too (a successful retry is refunded).
				for i := 1; i < len(errs); i++ {
					if errs[i] == nil {
						continue
					}
					cost := int64(14) // AWSStandardBudget.RetryCost
					if retry.IsThrottle(errs[i-1]) {
						cost = 5 // ThrottleCost
					}
					consumed.Add(cost)
				}
				switch {
				case err == nil:
					ok.Add(1)
				case errors.Is(err, retry.ErrBudgetExhausted):
					refused.Add(1)
				default:
					t.Errorf("unexpected error: %v", err)
				}
			})
		}
		wg.Wait()
		if ok.Load()+refused.Load() != 1000 || ok.Load() < 900 {
			t.Errorf("ok %d, refused by the budget %d", ok.Load(), refused.Load())
		}
		if rate, limiting := l.Rate(); !limiting || rate <= 0 {
			t.Errorf("limiter not limiting after a throttle storm: %v %v", rate, limiting)
		}
		// All callers are done: every retry's cost was either consumed by a
		// failed retry or refunded; first-try successes added 1 each (lost
		// while the bucket was full). So the deficit lies between what was
		// consumed less the rewards, and what was consumed.
		deficit := int64(500 - b.Tokens())
		if c, r := consumed.Load(), rewards.Load(); deficit > c || deficit < c-r {
			t.Errorf("budget deficit %d, want within [consumed %d − rewards %d, consumed]", deficit, c, r)
		}
	})
}

func TestLimiterSet(t *testing.T) {
	s, err := retry.NewLimiterSet(retry.LimiterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, b := s.Get("orders"), s.Get("users")
	if a == b || s.Get("orders") != a {
		t.Error("LimiterSet must return one limiter per key")
	}
	a.Observe(retry.OutcomeThrottled)
	if _, limiting := b.Rate(); limiting {
		t.Error("a throttle on one key limited another")
	}
	if _, err := retry.NewLimiterSet(retry.LimiterConfig{Beta: 2}); err == nil || !strings.Contains(err.Error(), "Beta") {
		t.Errorf("bad config: %v", err)
	}
}
