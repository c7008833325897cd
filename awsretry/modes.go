package awsretry

import (
	"time"

	"github.com/jittered/retry"
)

// The SDK's standard mode, as of aws-sdk-go-v2 v1.48.0 (the 2026 retry
// behaviour; aws-sdk-go-v2 issue #3416): 3 attempts; full jitter over
// min(20 s, base·2ⁿ⁻¹) with base 50 ms, or 1 s after a throttle; a 500-token
// quota where a retry costs 14 (5 after a throttle), a successful retry
// refunds its cost and a first-try success adds 1. DynamoDB clients use 4
// attempts and a 25 ms base.
const (
	standardAttempts       = 3
	standardBase           = 50 * time.Millisecond
	dynamoDBAttempts       = 4
	dynamoDBBase           = 25 * time.Millisecond
	standardThrottleBase   = time.Second
	standardCap            = 20 * time.Second
	recommendedAttempts    = 20
	recommendedBase        = 25 * time.Millisecond
	recommendedCap         = time.Second
	recommendedThrottleCap = 100 * time.Millisecond
)

func standardPolicy(attempts int, base time.Duration) retry.Policy {
	b, _ := retry.NewBudget(retry.AWSStandardBudget)
	return retry.Policy{
		MaxAttempts:     attempts,
		Backoff:         retry.Exponential{Base: base, Cap: standardCap},
		ThrottleBackoff: retry.Exponential{Base: standardThrottleBase, Cap: standardCap},
		Jitter:          retry.FullJitter,
		Budget:          b,
	}
}

// Standard returns a Retryer that behaves as the SDK's standard retry mode
// (NewStandard) for clients other than DynamoDB.
func Standard(optFns ...func(*Options)) *Retryer {
	return build(Options{Policy: standardPolicy(standardAttempts, standardBase)}, optFns)
}

// StandardDynamoDB returns a Retryer that behaves as the SDK's standard
// retry mode of a DynamoDB client: 4 attempts, 25 ms base.
func StandardDynamoDB(optFns ...func(*Options)) *Retryer {
	return build(Options{Policy: standardPolicy(dynamoDBAttempts, dynamoDBBase)}, optFns)
}

func adaptivePolicy(attempts int, base time.Duration) retry.Policy {
	p := standardPolicy(attempts, base)
	p.Limiter, _ = retry.NewAdaptiveLimiter(retry.AWSAdaptive)
	return p
}

// Adaptive returns a Retryer that behaves as the SDK's adaptive retry mode:
// the standard mode plus the CUBIC client-side rate limiter (reproduced to
// the SDK's published vectors), one per Retryer as the SDK has one per
// client. Successes refill the retry quota, as they do in the SDK since the
// fix of aws-sdk-go-v2 #3550 (v1.48.0: 486 → 500 after a successful retry).
func Adaptive(optFns ...func(*Options)) *Retryer {
	return build(Options{Policy: adaptivePolicy(standardAttempts, standardBase)}, optFns)
}

// AdaptiveDynamoDB is Adaptive with DynamoDB's 4 attempts and 25 ms base.
func AdaptiveDynamoDB(optFns ...func(*Options)) *Retryer {
	return build(Options{Policy: adaptivePolicy(dynamoDBAttempts, dynamoDBBase)}, optFns)
}

// RecommendedPolicy is the Policy of New: up to 20 attempts; full jitter
// over 25 ms doubling to 1 s (100 ms after a throttle: the limiter, not the
// sleep, paces throttled clients); the Goodput adaptive limiter on every
// attempt; and a budget that charges non-throttle retries (AWS costs: 500
// tokens, 14 per retry, refunded on success) but never gives up on
// throttles while the limiter paces them.
func RecommendedPolicy() retry.Policy {
	cfg := retry.AWSStandardBudget
	cfg.ExemptThrottles = true
	b, _ := retry.NewBudget(cfg)
	l, _ := retry.NewAdaptiveLimiter(retry.LimiterConfig{Algorithm: retry.Goodput})
	return retry.Policy{
		MaxAttempts:     recommendedAttempts,
		Backoff:         retry.Exponential{Base: recommendedBase, Cap: recommendedCap},
		ThrottleBackoff: retry.Exponential{Base: recommendedBase, Cap: recommendedThrottleCap},
		Jitter:          retry.FullJitter,
		Budget:          b,
		Limiter:         l,
	}
}

// New returns a Retryer with the recommended setup (RecommendedPolicy),
// changed by optFns. Its adaptive limiter is keyed per service and
// operation, and per resource with the KeyByResource API option
// (Options.Limiters: a Goodput LimiterSet, idle keys evicted after 10
// minutes).
func New(optFns ...func(*Options)) *Retryer {
	ls, _ := retry.NewLimiterSet(retry.LimiterConfig{Algorithm: retry.Goodput})
	return build(Options{Policy: RecommendedPolicy(), Limiters: ls}, optFns)
}
