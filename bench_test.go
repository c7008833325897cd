package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jittered/retry"
)

var errBench = errors.New("transient")

// BenchmarkBaseline_DirectCall is the op called without a retry loop: the
// floor that BenchmarkDo_FirstTrySucceeds is compared with.
func BenchmarkBaseline_DirectCall(b *testing.B) {
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := callDirect(ctx, op); err != nil {
			b.Fatal(err)
		}
	}
}

//go:noinline
func callDirect(ctx context.Context, op func(context.Context) error) error { return op(ctx) }

func BenchmarkDo_FirstTrySucceeds(b *testing.B) { benchFirstTry(b, &retry.Policy{}) }

// A configured Policy: the check of its schedule, jitter and classifier is
// on the success path.
func BenchmarkDo_FirstTrySucceedsConfigured(b *testing.B) {
	benchFirstTry(b, &retry.Policy{
		MaxAttempts: 5,
		Backoff:     retry.Exponential{Base: 10 * time.Millisecond, Cap: time.Second},
		Jitter:      retry.DecorrelatedJitter,
		Classifier:  retry.ClassifierFunc(func(error) retry.Decision { return retry.Unknown }),
	})
}

// benchFirstTry measures p.Do with an op that succeeds at once.
func benchFirstTry(b *testing.B, p *retry.Policy) {
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Do(ctx, op); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDoValue_FirstTrySucceeds(b *testing.B) {
	p := &retry.Policy{}
	ctx := context.Background()
	op := func(context.Context) (int, error) { return 1, nil }
	b.ReportAllocs()
	for b.Loop() {
		if _, err := retry.DoValue(ctx, p, op); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDo_ThreeFailuresZeroDelay(b *testing.B) {
	p := &retry.Policy{MaxAttempts: 4, Backoff: retry.Constant{}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		err := p.Do(ctx, func(context.Context) error {
			if n++; n <= 3 {
				return errBench
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDo_FirstTrySucceeds_Budget(b *testing.B) {
	budget, _ := retry.NewBudget(retry.AWSStandardBudget)
	p := &retry.Policy{Budget: budget}
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		_ = p.Do(ctx, op)
	}
}

// TestSuccessPathAllocatesNothing is the gate behind the benchmark's claim.
func TestSuccessPathAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	budget, _ := retry.NewBudget(retry.AWSStandardBudget)
	for name, p := range map[string]*retry.Policy{
		"zero":   {},
		"full":   {MaxAttempts: 5, Backoff: retry.Exponential{Base: time.Millisecond}, Jitter: retry.DecorrelatedJitter, Classifier: retry.ClassifierFunc(func(error) retry.Decision { return retry.Unknown }), Observer: retry.ObserverFuncs{}},
		"budget": {Budget: budget},
	} {
		op := func(context.Context) error { return nil }
		if n := testing.AllocsPerRun(1000, func() { _ = p.Do(ctx, op) }); n != 0 {
			t.Errorf("%s: Do allocates %v times on the success path, want 0", name, n)
		}
		vop := func(context.Context) (string, error) { return "ok", nil }
		if n := testing.AllocsPerRun(1000, func() { _, _ = retry.DoValue(ctx, p, vop) }); n != 0 {
			t.Errorf("%s: DoValue allocates %v times on the success path, want 0", name, n)
		}
	}
}

// BenchmarkDo_FirstTrySucceedsCalmLimiter is BenchmarkDo_FirstTrySucceeds
// with an AdaptiveLimiter that is not limiting (the service never
// throttled): an atomic load and an atomic add, no lock, no clock.
func BenchmarkDo_FirstTrySucceedsCalmLimiter(b *testing.B) {
	l, _ := retry.NewAdaptiveLimiter(retry.LimiterConfig{})
	benchFirstTry(b, &retry.Policy{Limiter: l})
}

// BenchmarkDo_FirstTrySucceedsCalmLimiterParallel: the same from every
// CPU at once, one shared limiter (the atomic counter is contended).
func BenchmarkDo_FirstTrySucceedsCalmLimiterParallel(b *testing.B) {
	l, _ := retry.NewAdaptiveLimiter(retry.LimiterConfig{})
	p := &retry.Policy{Limiter: l}
	op := func(context.Context) error { return nil }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := p.Do(ctx, op); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
