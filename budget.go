package retry

import (
	"errors"
	"math"
	"sync"
	"time"
)

// BudgetConfig sets the accounting of a Budget. All amounts are tokens. The
// presets reproduce published semantics; see AWSStandardBudget,
// AWSClassicBudget, GRPCBudget and RatioBudget.
type BudgetConfig struct {
	// Capacity is the most tokens the bucket holds; it starts full. 0 is
	// allowed: no retry that costs anything is ever granted (the AWS SDKs'
	// ratelimit.NewTokenRateLimit(0)).
	Capacity float64
	// RetryCost is taken for each retry after a transient error.
	RetryCost float64
	// ThrottleCost is taken for each retry after a throttle. 0 means RetryCost.
	ThrottleCost float64
	// TimeoutCost is taken for each retry after an attempt that timed out.
	// 0 means RetryCost.
	TimeoutCost float64
	// FailureCost is taken for every retryable failure, whether or not a
	// retry follows (gRPC: 1).
	FailureCost float64
	// SuccessReward is added on every success (gRPC: tokenRatio).
	SuccessReward float64
	// FirstTryReward is added when the first attempt succeeds (AWS: 1).
	FirstTryReward float64
	// AttemptDeposit is added for every first attempt, whatever its outcome:
	// retries are then at most AttemptDeposit per call plus the bucket
	// (Finagle-style retry ratio).
	AttemptDeposit float64
	// RefundOnSuccess returns the cost of a retry when that retry succeeds
	// (AWS). The cost of a retry is always returned when the retry ends in
	// anything but another retryable failure: a success (if RefundOnSuccess),
	// a non-retryable or permanent error, or the caller's cancellation.
	RefundOnSuccess bool
	// Threshold: a retry is granted only while the bucket holds more than
	// Threshold tokens (gRPC: Capacity/2), and always only if it holds the
	// retry's cost.
	Threshold float64
	// RefillRate adds tokens per second of time passing. 0 means none.
	RefillRate float64
	// ExemptThrottles grants retries after throttles without charge: with an
	// adaptive limiter pacing every attempt, a throttle says "slower", which
	// the limiter does, not "the service is failing", which a budget guards
	// against. Other errors are charged as configured.
	ExemptThrottles bool
}

// AWSStandardBudget is the AWS SDKs' retry quota after the 2026 update to
// their standard mode: 500 tokens, a retry costs 14 (5 after a throttle), a
// successful retry refunds its cost and a first-try success adds 1.
// Source: aws-sdk-go-v2 issue #3416, "Updated default retry behavior (2026)".
var AWSStandardBudget = BudgetConfig{
	Capacity: 500, RetryCost: 14, ThrottleCost: 5, TimeoutCost: 14,
	FirstTryReward: 1, RefundOnSuccess: true,
}

// AWSClassicBudget is the AWS SDKs' retry quota before 2026: 500 tokens, a
// retry costs 5 (10 after a timeout), a successful retry refunds its cost and
// a first-try success adds 1. Source: aws-sdk-go-v2 aws/retry/standard.go
// (DefaultRetryRateTokens, DefaultRetryCost, DefaultRetryTimeoutCost,
// DefaultNoRetryIncrement).
var AWSClassicBudget = BudgetConfig{
	Capacity: 500, RetryCost: 5, ThrottleCost: 5, TimeoutCost: 10,
	FirstTryReward: 1, RefundOnSuccess: true,
}

// GRPCBudget is gRPC's retry throttling (gRFC A6, "retryThrottling"): every
// failure takes 1 token, every success adds tokenRatio, and retries are
// allowed only while more than maxTokens/2 remain.
func GRPCBudget(maxTokens, tokenRatio float64) BudgetConfig {
	return BudgetConfig{
		Capacity: maxTokens, FailureCost: 1, SuccessReward: tokenRatio,
		Threshold: maxTokens / 2,
	}
}

// RatioBudget allows retries up to ratio times the number of calls (each
// call deposits ratio, each retry costs 1), plus a reserve of burst retries
// for quiet periods. Under a total outage the retries of n calls are at most
// ratio·n + burst. Throttle retries cost the same.
func RatioBudget(ratio, burst float64) BudgetConfig {
	return BudgetConfig{Capacity: burst, RetryCost: 1, AttemptDeposit: ratio}
}

// Budget is a retry budget: a token bucket that grants retries only while
// most calls succeed, so that a fleet of callers cannot multiply the load on
// a service that is failing. One Budget is shared by all calls to one
// service; it is safe for concurrent use.
//
// Methods ending in At take the current time as an argument (for simulation
// in virtual time); the others read the clock.
type Budget struct {
	cfg    BudgetConfig
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// NewBudget returns a full Budget, or an error naming the first field out of
// range.
func NewBudget(cfg BudgetConfig) (*Budget, error) {
	b := &Budget{cfg: cfg, tokens: cfg.Capacity}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	return b, nil
}

// Validate reports whether the configuration is in range.
func (b *Budget) Validate() error {
	c := b.cfg
	if !(c.Capacity >= 0) || math.IsInf(c.Capacity, 0) {
		return fieldError("BudgetConfig.Capacity", c.Capacity, "must be a finite number ≥ 0 (0: no retries at all, as the AWS SDKs' NewTokenRateLimit(0))")
	}
	for _, f := range [...]struct {
		name string
		v    float64
	}{
		{"RetryCost", c.RetryCost}, {"ThrottleCost", c.ThrottleCost}, {"TimeoutCost", c.TimeoutCost},
		{"FailureCost", c.FailureCost}, {"SuccessReward", c.SuccessReward}, {"FirstTryReward", c.FirstTryReward},
		{"AttemptDeposit", c.AttemptDeposit}, {"Threshold", c.Threshold}, {"RefillRate", c.RefillRate},
	} {
		if !(f.v >= 0) || math.IsInf(f.v, 0) {
			return fieldError("BudgetConfig."+f.name, f.v, "must be a finite number ≥ 0")
		}
	}
	if c.RetryCost == 0 && c.FailureCost == 0 && c.Threshold == 0 {
		return errors.New("retry: BudgetConfig: RetryCost, FailureCost and Threshold are all 0: the budget would never refuse a retry")
	}
	return nil
}

// Config returns the budget's configuration.
func (b *Budget) Config() BudgetConfig { return b.cfg }

// Kind is the kind of failure a retry follows; it selects the retry's cost.
type Kind uint8

// Failure kinds.
const (
	KindTransient Kind = iota // any retryable error that is not one of the below
	KindThrottle              // a throttle
	KindTimeout               // an attempt that hit its own timeout
)

// String returns "transient", "throttle" or "timeout".
func (k Kind) String() string {
	switch k {
	case KindThrottle:
		return "throttle"
	case KindTimeout:
		return "timeout"
	}
	return "transient"
}

func (b *Budget) cost(k Kind) float64 {
	switch k {
	case KindThrottle:
		if b.cfg.ThrottleCost > 0 {
			return b.cfg.ThrottleCost
		}
	case KindTimeout:
		if b.cfg.TimeoutCost > 0 {
			return b.cfg.TimeoutCost
		}
	}
	return b.cfg.RetryCost
}

// refill must be called with mu held.
func (b *Budget) refill(now time.Time) {
	if b.cfg.RefillRate <= 0 || now.IsZero() {
		return
	}
	if !b.last.IsZero() && now.After(b.last) {
		b.add(now.Sub(b.last).Seconds() * b.cfg.RefillRate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
}

func (b *Budget) add(n float64) { b.tokens = min(b.cfg.Capacity, b.tokens+n) }

// AcquireAt asks for a retry after a failure of kind k. It returns the cost
// taken and true if the retry is granted; nothing is taken otherwise.
func (b *Budget) AcquireAt(now time.Time, k Kind) (cost float64, ok bool) {
	if k == KindThrottle && b.cfg.ExemptThrottles {
		return 0, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	c := b.cost(k)
	if b.tokens < c || (b.cfg.Threshold > 0 && !(b.tokens > b.cfg.Threshold)) {
		return 0, false
	}
	b.tokens -= c
	return c, true
}

// Acquire is AcquireAt(time.Now(), k).
func (b *Budget) Acquire(k Kind) (float64, bool) { return b.AcquireAt(time.Now(), k) }

// StartAt records a first attempt (AttemptDeposit).
func (b *Budget) StartAt(now time.Time) {
	if b.cfg.AttemptDeposit == 0 && b.cfg.RefillRate == 0 {
		return
	}
	b.mu.Lock()
	b.refill(now)
	b.add(b.cfg.AttemptDeposit)
	b.mu.Unlock()
}

// SucceededAt records a success at attempt number attempt (1 for the first
// try); paid is the cost taken for the retry that led to it (0 on a first
// try), refunded if RefundOnSuccess.
func (b *Budget) SucceededAt(now time.Time, attempt int, paid float64) {
	b.mu.Lock()
	b.refill(now)
	n := b.cfg.SuccessReward
	if attempt <= 1 {
		n += b.cfg.FirstTryReward
	}
	if b.cfg.RefundOnSuccess {
		n += paid
	}
	b.add(n)
	b.mu.Unlock()
}

// FailedAt records a retryable failure (FailureCost).
func (b *Budget) FailedAt(now time.Time) {
	if b.cfg.FailureCost == 0 {
		return
	}
	b.mu.Lock()
	b.refill(now)
	b.tokens = max(0, b.tokens-b.cfg.FailureCost)
	b.mu.Unlock()
}

// RefundAt returns paid tokens: the cost of a retry that ended in neither a
// success nor another retryable failure.
func (b *Budget) RefundAt(now time.Time, paid float64) {
	if paid <= 0 {
		return
	}
	b.mu.Lock()
	b.refill(now)
	b.add(paid)
	b.mu.Unlock()
}

// TokensAt returns the tokens available at now.
func (b *Budget) TokensAt(now time.Time) float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now)
	return b.tokens
}

// Tokens is TokensAt(time.Now()).
func (b *Budget) Tokens() float64 { return b.TokensAt(time.Now()) }

func (b *Budget) clocked() bool { return b.cfg.RefillRate > 0 }
