package sim

import (
	"time"

	"github.com/jittered/retry"
)

// Strategy is a named way to retry, as compared in the README, the demo and
// the benchmarks. New builds a fresh Policy (with fresh shared state).
type Strategy struct {
	Name string
	New  func(seed uint64) *retry.Policy
}

// Common settings of the comparison (the same for every library in the
// benchmarks): base 25 ms, cap 1 s, up to 30 attempts. The recommended
// setup also has RecommendedThrottleAttempts: throttles that its limiter
// paces are counted apart from the 30.
const (
	CompareBase     = 25 * time.Millisecond
	CompareCap      = time.Second
	CompareAttempts = 30

	RecommendedThrottleAttempts = 100
)

func expo() retry.Exponential { return retry.Exponential{Base: CompareBase, Cap: CompareCap} }

// Strategies returns the strategies compared everywhere, in order: the naive
// loop, full jitter, decorrelated jitter, full jitter with the AWS standard
// budget, the AWS adaptive mode (CUBIC with the AWS budget) and the
// recommended setup.
func Strategies() []Strategy {
	return []Strategy{
		{"naive (2ⁿ, no jitter)", func(seed uint64) *retry.Policy {
			return &retry.Policy{MaxAttempts: CompareAttempts, Backoff: expo(), Jitter: retry.NoJitter, Rand: retry.NewRand(seed)}
		}},
		{"full jitter", func(seed uint64) *retry.Policy {
			return &retry.Policy{MaxAttempts: CompareAttempts, Backoff: expo(), Jitter: retry.FullJitter, Rand: retry.NewRand(seed)}
		}},
		{"decorrelated jitter", func(seed uint64) *retry.Policy {
			return &retry.Policy{MaxAttempts: CompareAttempts, Backoff: expo(), Jitter: retry.DecorrelatedJitter, Rand: retry.NewRand(seed)}
		}},
		{"full jitter + budget", func(seed uint64) *retry.Policy {
			b, _ := retry.NewBudget(retry.AWSStandardBudget)
			return &retry.Policy{MaxAttempts: CompareAttempts, Backoff: expo(), Jitter: retry.FullJitter, Budget: b, Rand: retry.NewRand(seed)}
		}},
		{"adaptive (AWS CUBIC)", func(seed uint64) *retry.Policy {
			l, _ := retry.NewAdaptiveLimiter(retry.AWSAdaptive)
			b, _ := retry.NewBudget(retry.AWSStandardBudget)
			return &retry.Policy{MaxAttempts: CompareAttempts, Backoff: expo(), Jitter: retry.FullJitter, Budget: b, Limiter: l, Rand: retry.NewRand(seed)}
		}},
		{"recommended", Recommended},
	}
}

// Recommended is the project's recommended setup against a throttling
// service: the Goodput adaptive limiter paces every attempt, so few are
// throttled; short jittered delays after a throttle (the limiter, not the
// sleep, does the waiting); and a ratio budget that caps retries of other
// errors without giving up on throttles while the service is healthy. Its
// throttles count against ThrottleAttempts (100), not the 30 attempts: the
// limiter paces them (in the matrix, 158 writes of squeezed clients failed
// on the 30 where backoff failed none).
func Recommended(seed uint64) *retry.Policy {
	l, _ := retry.NewAdaptiveLimiter(retry.LimiterConfig{Algorithm: retry.Goodput})
	return &retry.Policy{
		MaxAttempts:      CompareAttempts,
		ThrottleAttempts: RecommendedThrottleAttempts,
		Backoff:          expo(),
		ThrottleBackoff:  retry.Exponential{Base: CompareBase, Cap: 100 * time.Millisecond},
		Jitter:           retry.FullJitter,
		Limiter:          l,
		Rand:             retry.NewRand(seed),
	}
}
