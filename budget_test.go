package retry_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jittered/retry"
)

var t0 = time.Unix(1_000_000, 0)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func mustBudget(t testing.TB, c retry.BudgetConfig) *retry.Budget {
	t.Helper()
	b, err := retry.NewBudget(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBudgetStepsAWSStandard walks the AWS 2026 standard-mode quota through
// explicit instants: timestamp and event in, tokens out.
func TestBudgetStepsAWSStandard(t *testing.T) {
	b := mustBudget(t, retry.AWSStandardBudget)
	steps := []struct {
		ms     int
		do     func() bool
		tokens float64
		ok     bool
	}{
		{0, func() bool { _, ok := b.AcquireAt(at(0), retry.KindTransient); return ok }, 486, true},
		{1, func() bool { _, ok := b.AcquireAt(at(1), retry.KindThrottle); return ok }, 481, true},
		{2, func() bool { b.SucceededAt(at(2), 2, 5); return true }, 486, true}, // refund of the throttle retry
		{3, func() bool { b.SucceededAt(at(3), 1, 0); return true }, 487, true}, // first-try success +1
		{4, func() bool { b.SucceededAt(at(4), 1, 0); return true }, 488, true}, //
		{5, func() bool { _, ok := b.AcquireAt(at(5), retry.KindTimeout); return ok }, 474, true},
		{6, func() bool { b.RefundAt(at(6), 14); return true }, 488, true},
	}
	for _, s := range steps {
		if ok := s.do(); ok != s.ok {
			t.Fatalf("t=%dms: ok %v, want %v", s.ms, ok, s.ok)
		}
		if got := b.TokensAt(at(s.ms)); got != s.tokens {
			t.Fatalf("t=%dms: tokens %v, want %v", s.ms, got, s.tokens)
		}
	}
	// Drain: 488/14 = 34 retries granted, the 35th refused and nothing taken.
	granted := 0
	for {
		if _, ok := b.AcquireAt(at(10), retry.KindTransient); !ok {
			break
		}
		granted++
	}
	if granted != 34 || b.TokensAt(at(10)) != 488-34*14 {
		t.Errorf("granted %d, tokens %v", granted, b.TokensAt(at(10)))
	}
	// Full capacity is never exceeded.
	for range 1000 {
		b.SucceededAt(at(11), 1, 0)
	}
	if b.TokensAt(at(11)) != 500 {
		t.Errorf("tokens %v above capacity", b.TokensAt(at(11)))
	}
}

func TestBudgetClassicTimeoutCost(t *testing.T) {
	b := mustBudget(t, retry.AWSClassicBudget)
	if c, _ := b.AcquireAt(at(0), retry.KindTimeout); c != 10 {
		t.Errorf("classic timeout cost %v, want 10", c)
	}
	if c, _ := b.AcquireAt(at(0), retry.KindTransient); c != 5 {
		t.Errorf("classic retry cost %v, want 5", c)
	}
}

func TestBudgetGRPCThreshold(t *testing.T) {
	b := mustBudget(t, retry.GRPCBudget(10, 0.1))
	// Failures take 1 each; retries stop once tokens ≤ 5.
	for i := range 5 {
		b.FailedAt(at(i))
		_, ok := b.AcquireAt(at(i), retry.KindTransient)
		want := 10-float64(i+1) > 5
		if ok != want {
			t.Fatalf("failure %d: retry granted %v, want %v (tokens %v)", i+1, ok, want, b.TokensAt(at(i)))
		}
	}
	// 10 successes at ratio 0.1 add 1 token: 5 → 6 > 5, retries allowed again.
	for i := range 10 {
		b.SucceededAt(at(10+i), 1, 0)
	}
	if got := b.TokensAt(at(20)); math.Abs(got-6) > 1e-9 {
		t.Fatalf("tokens %v, want 6", got)
	}
	if _, ok := b.AcquireAt(at(21), retry.KindTransient); !ok {
		t.Error("retry refused above the threshold")
	}
}

func TestBudgetRefillExplicitTime(t *testing.T) {
	b := mustBudget(t, retry.BudgetConfig{Capacity: 10, RetryCost: 5, RefillRate: 2})
	b.AcquireAt(at(0), retry.KindTransient)
	b.AcquireAt(at(0), retry.KindTransient)
	if _, ok := b.AcquireAt(at(0), retry.KindTransient); ok {
		t.Fatal("empty bucket granted a retry")
	}
	if _, ok := b.AcquireAt(at(2400), retry.KindTransient); ok { // 4.8 tokens
		t.Fatal("granted at 4.8 tokens")
	}
	if _, ok := b.AcquireAt(at(2500), retry.KindTransient); !ok { // 5.0 tokens
		t.Fatal("refused at 5 tokens")
	}
	if got := b.TokensAt(at(100_000)); got != 10 {
		t.Errorf("refill overflowed capacity: %v", got)
	}
}

// A zero-capacity budget is valid and grants no retry that costs anything,
// as the AWS SDKs' NewTokenRateLimit(0) does.
func TestBudgetZeroCapacity(t *testing.T) {
	b := mustBudget(t, retry.BudgetConfig{Capacity: 0, RetryCost: 5, ExemptThrottles: true})
	if _, ok := b.AcquireAt(at(0), retry.KindTransient); ok {
		t.Error("a zero-capacity budget granted a retry costing 5")
	}
	if _, ok := b.AcquireAt(at(0), retry.KindThrottle); !ok {
		t.Error("an exempt throttle retry (cost 0) was refused")
	}
	b.SucceededAt(at(0), 1, 0)
	if got := b.TokensAt(at(0)); got != 0 {
		t.Errorf("tokens %v, want 0", got)
	}
}

func TestBudgetConfigValidation(t *testing.T) {
	for _, c := range []struct {
		cfg   retry.BudgetConfig
		field string
	}{
		{retry.BudgetConfig{}, "never refuse"},
		{retry.BudgetConfig{Capacity: math.NaN(), RetryCost: 1}, "Capacity"},
		{retry.BudgetConfig{Capacity: -1, RetryCost: 1}, "Capacity"},
		{retry.BudgetConfig{Capacity: 1, RetryCost: -1}, "RetryCost"},
		{retry.BudgetConfig{Capacity: 1, RefillRate: math.Inf(1), RetryCost: 1}, "RefillRate"},
		{retry.BudgetConfig{Capacity: 1}, "never refuse"},
	} {
		if _, err := retry.NewBudget(c.cfg); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("NewBudget(%+v) = %v, want an error about %s", c.cfg, err, c.field)
		}
	}
}

// TestBudgetRefundOnNonRetryableOutcome_AWS3186: a retry that ends in a
// non-retryable error gets its cost back (aws-sdk-go-v2 #3186 kept it).
func TestBudgetRefundOnNonRetryableOutcome_AWS3186(t *testing.T) {
	for name, final := range map[string]error{
		"not retryable": errNotRetryable,
		"permanent":     retry.Permanent(errors.New("bad input")),
	} {
		t.Run(name, func(t *testing.T) {
			b := mustBudget(t, retry.AWSStandardBudget)
			p := &retry.Policy{Budget: b, Backoff: retry.Constant{}, Classifier: stopOn(errNotRetryable)}
			calls := 0
			_ = p.Do(context.Background(), func(context.Context) error {
				calls++
				if calls == 1 {
					return errTransient
				}
				return final
			})
			if calls != 2 || b.Tokens() != 500 {
				t.Errorf("calls %d tokens %v, want 2 calls and the retry's 14 tokens refunded (500)", calls, b.Tokens())
			}
		})
	}
}

func stopOn(target error) retry.Classifier {
	return retry.ClassifierFunc(func(err error) retry.Decision {
		if errors.Is(err, target) {
			return retry.Stop
		}
		return retry.Unknown
	})
}

var errNotRetryable = errors.New("ValidationException")

func TestBudgetAccountingEveryPath(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBudget(t, retry.AWSStandardBudget)
		p := &retry.Policy{MaxAttempts: 5, Budget: b, Backoff: retry.Constant{Interval: time.Second}, Jitter: retry.NoJitter}
		// success after two throttles: pays 5+5, refunds the last 5 → 495
		calls := 0
		_ = p.Do(t.Context(), failing(2, retry.Throttle(errTransient), &calls))
		if got := b.Tokens(); got != 495 {
			t.Errorf("after success on retry: %v, want 495", got)
		}
		// first-try success: +1
		_ = p.Do(t.Context(), func(context.Context) error { return nil })
		if got := b.Tokens(); got != 496 {
			t.Errorf("after first-try success: %v, want 496", got)
		}
		// exhausting attempts: 4 retries of 14 consumed (the last failure pays nothing)
		calls = 0
		_ = p.Do(t.Context(), failing(100, errTransient, &calls))
		if got := b.Tokens(); got != 496-4*14 {
			t.Errorf("after max attempts: %v, want %v", got, 496-4*14)
		}
		// cancellation during the sleep before a paid retry: refunded
		before := b.Tokens()
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(500 * time.Millisecond); cancel() }()
		calls = 0
		err := p.Do(ctx, failing(100, errTransient, &calls))
		if !errors.Is(err, context.Canceled) || b.Tokens() != before {
			t.Errorf("after cancel mid-sleep: err %v tokens %v, want %v", err, b.Tokens(), before)
		}
	})
}

// TestBudgetGrantedRetriesStillBackOff_AWS3413: at 100 % failure an empty
// quota must not turn into retries without backoff (aws-sdk-go-v2 #3413):
// every granted retry sleeps its full delay, and a refused one gives up at
// once with a client-side error that wraps the last error.
func TestBudgetGrantedRetriesStillBackOff_AWS3413(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBudget(t, retry.BudgetConfig{Capacity: 50, RetryCost: 14})
		p := &retry.Policy{MaxAttempts: 10, Budget: b, Backoff: retry.Constant{Interval: 100 * time.Millisecond}, Jitter: retry.NoJitter}
		op := func(context.Context) error { return errTransient }
		start := time.Now()
		err := p.Do(t.Context(), op)
		// 50 tokens → 3 retries (42), the 4th refused.
		if got := time.Since(start); got != 300*time.Millisecond {
			t.Errorf("elapsed %v, want 3 full delays (300ms)", got)
		}
		if !errors.Is(err, retry.ErrBudgetExhausted) || !errors.Is(err, errTransient) || !strings.Contains(err.Error(), "retry budget exhausted (client-side)") {
			t.Errorf("err = %v", err)
		}
		var re *retry.Error
		errors.As(err, &re)
		if re.Attempts != 4 {
			t.Errorf("attempts %d, want 4", re.Attempts)
		}
		// Now empty: the next call makes exactly one attempt and no retry.
		calls := 0
		start = time.Now()
		_ = p.Do(t.Context(), func(ctx context.Context) error { calls++; return op(ctx) })
		if calls != 1 || time.Since(start) != 0 {
			t.Errorf("empty budget: %d calls in %v, want 1 call and no retry", calls, time.Since(start))
		}
	})
}

// TestBudgetRefillsWithAdaptiveLimiter_AWS3550: with an adaptive limiter in
// the loop, successes still return retry costs (aws-sdk-go-v2 #3550: the
// adaptive mode never refilled the quota).
func TestBudgetRefillsWithAdaptiveLimiter_AWS3550(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBudget(t, retry.AWSStandardBudget)
		l, _ := retry.NewAdaptiveLimiter(retry.AWSAdaptive)
		p := &retry.Policy{MaxAttempts: 3, Budget: b, Limiter: l, Backoff: retry.Constant{Interval: time.Millisecond}}
		for range 10 {
			calls := 0
			if err := p.Do(t.Context(), failing(1, errTransient, &calls)); err != nil {
				t.Fatal(err)
			}
		}
		if got := b.Tokens(); got != 500 {
			t.Errorf("tokens %v after 10 successful retries, want 500 (each refunded)", got)
		}
	})
}

func TestBudgetExhaustionAndRecovery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := mustBudget(t, retry.BudgetConfig{Capacity: 20, RetryCost: 10, RefillRate: 5})
		p := &retry.Policy{MaxAttempts: 3, Budget: b, Backoff: retry.Constant{Interval: 10 * time.Millisecond}}
		calls := 0
		_ = p.Do(t.Context(), failing(100, errTransient, &calls)) // takes 20 (2 retries)
		calls = 0
		err := p.Do(t.Context(), failing(100, errTransient, &calls))
		if !errors.Is(err, retry.ErrBudgetExhausted) || calls != 1 {
			t.Fatalf("exhausted: calls %d err %v", calls, err)
		}
		time.Sleep(2 * time.Second) // refills 10 tokens
		calls = 0
		if err := p.Do(t.Context(), failing(1, errTransient, &calls)); err != nil || calls != 2 {
			t.Errorf("after refill: calls %d err %v, want one granted retry", calls, err)
		}
	})
}

// TestBudgetBoundsAmplification is the property a budget exists for: under
// a total outage, attempts ≤ firsts·(1+ratio) + capacity/cost, however many
// callers and however many attempts each allows.
func TestBudgetBoundsAmplification(t *testing.T) {
	for _, tc := range []struct{ ratio, burst float64 }{{0.1, 10}, {0.2, 0}, {0.05, 100}, {1, 3}} {
		b := mustBudget(t, retry.RatioBudget(tc.ratio, max(tc.burst, 1)))
		p := &retry.Policy{MaxAttempts: retry.Unlimited, Budget: b, Backoff: retry.Constant{}}
		var mu sync.Mutex
		attempts, firsts := 0, 0
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				for range 40 {
					mu.Lock()
					firsts++
					mu.Unlock()
					_ = p.Do(context.Background(), func(context.Context) error {
						mu.Lock()
						attempts++
						mu.Unlock()
						return errTransient
					})
				}
			})
		}
		wg.Wait()
		bound := float64(firsts)*(1+tc.ratio) + max(tc.burst, 1)/1
		if float64(attempts) > bound+1e-9 {
			t.Errorf("ratio %v burst %v: %d attempts for %d calls > bound %v", tc.ratio, tc.burst, attempts, firsts, bound)
		}
		if float64(attempts) < float64(firsts)*(1+tc.ratio)*0.9 {
			t.Errorf("ratio %v: only %d attempts for %d calls: the budget refuses retries it should grant", tc.ratio, attempts, firsts)
		}
	}
}

func TestBudgetExemptThrottles(t *testing.T) {
	b := mustBudget(t, retry.BudgetConfig{Capacity: 10, RetryCost: 5, ExemptThrottles: true})
	for range 100 {
		if c, ok := b.AcquireAt(at(0), retry.KindThrottle); !ok || c != 0 {
			t.Fatalf("throttle retry charged %v (ok %v)", c, ok)
		}
	}
	b.AcquireAt(at(0), retry.KindTransient)
	b.AcquireAt(at(0), retry.KindTransient)
	if _, ok := b.AcquireAt(at(0), retry.KindTransient); ok {
		t.Error("transient retries not charged")
	}
}

func TestNextDelayAndAttemptLimit(t *testing.T) {
	p := &retry.Policy{MaxAttempts: 4, Backoff: retry.Exponential{Base: 50 * time.Millisecond}, ThrottleBackoff: retry.Exponential{Base: time.Second}, Rand: func() float64 { return 0.5 }}
	if d := p.NextDelay(3, false, 0); d != 100*time.Millisecond {
		t.Errorf("NextDelay(3) = %v, want half of 200ms", d)
	}
	if d := p.NextDelay(2, true, 0); d != time.Second {
		t.Errorf("throttled NextDelay(2) = %v, want half of 2s", d)
	}
	if n, ok := p.AttemptLimit(); n != 4 || !ok {
		t.Errorf("AttemptLimit = %d, %v", n, ok)
	}
	if _, ok := (&retry.Policy{MaxAttempts: retry.Unlimited}).AttemptLimit(); ok {
		t.Error("Unlimited reported a limit")
	}
	if n, _ := (&retry.Policy{}).AttemptLimit(); n != 3 {
		t.Errorf("default AttemptLimit = %d", n)
	}
}
