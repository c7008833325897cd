package retry

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// Defaults. Each applies when the corresponding Policy field is zero.
const (
	// DefaultMaxAttempts is 3 attempts in all (the first and two retries):
	// the AWS SDKs' standard retry mode. Retrying more rarely helps a caller
	// and multiplies load on a sick service (Amazon Builders' Library,
	// "Timeouts, retries, and backoff with jitter").
	DefaultMaxAttempts = 3
	// DefaultBase is 50 ms, the AWS SDKs' current base delay for transient
	// errors other than throttles.
	DefaultBase = 50 * time.Millisecond
	// DefaultMultiplier is 2: the textbook doubling, used by the AWS SDKs.
	DefaultMultiplier = 2.0
	// DefaultCap is 20 s, the AWS SDKs' maximum backoff.
	DefaultCap = 20 * time.Second
	// DefaultMaxHint is the longest server delay hint obeyed by default,
	// 20 s: the same bound as DefaultCap. Longer hints are clamped to it,
	// then spread by HintSpread.
	DefaultMaxHint = 20 * time.Second
	// DefaultHintSpread is the fraction of a server hint added at random
	// above it (10 %): clients told "Retry-After: 1" do not all come back in
	// the same millisecond.
	DefaultHintSpread = 0.1
)

// Unlimited, as Policy.MaxAttempts, removes the attempt limit: the loop then
// ends on success, MaxElapsed, the context, the budget or the classifier.
const Unlimited = -1

// NoSpread, as Policy.HintSpread, makes the loop sleep exactly the server's
// hint.
const NoSpread = -1.0

// DefaultBackoff is the schedule of the zero Policy: 50 ms, 100 ms, 200 ms, …
// capped at 20 s, with FullJitter applied on top.
var DefaultBackoff Backoff = Exponential{Base: DefaultBase, Multiplier: DefaultMultiplier, Cap: DefaultCap}

// Policy says how to retry. The zero value is ready to use: 3 attempts,
// exponential backoff from 50 ms doubling to a 20 s cap, full jitter, every
// error retried except Permanent ones and the caller's context errors (see
// the package documentation for the defaults table and their sources).
//
// A Policy is configuration: build it once and share it; it must not be
// changed after first use. Do and DoValue keep all per-call state on their own
// stack, so any number of goroutines may use one Policy at once.
//
// Every call checks its Policy before using it, and an invalid one makes the
// call return a *Error with ReasonInvalid whose Cause names each bad field,
// its value and what is allowed (as Validate does): the numeric fields a
// first attempt depends on (MaxAttempts, MaxElapsed, AttemptTimeout,
// MaxHint, HintSpread) before the first attempt, in a few inlined
// comparisons; the schedules, jitter, classifier and budget, which only a
// failure uses, at the first failure, before any of them runs (so a nil
// ClassifierFunc or JitterFunc is an error, never a nil dereference).
// Nothing is stored in the Policy: it stays plain data that may be copied at
// any time. Call Validate to catch every mistake at start-up.
type Policy struct {
	// MaxAttempts is the number of attempts in all, the first included
	// (throttled attempts excluded when ThrottleAttempts applies).
	// 0 means DefaultMaxAttempts; Unlimited means no limit.
	MaxAttempts int

	// ThrottleAttempts, if positive and the Policy has a Limiter, counts
	// throttled attempts apart from MaxAttempts: an attempt answered by a
	// throttle uses one of ThrottleAttempts instead of one of MaxAttempts.
	// With a limiter pacing every attempt, a throttle says "slower", which
	// the limiter does; the attempt limit is for failures (as a Budget with
	// ExemptThrottles does not charge throttles). 0 means throttles count
	// against MaxAttempts like any attempt. It applies to Do, DoValue and
	// Run; hosts that own the loop (the AWS SDK's retry middleware) count
	// every attempt against their own limit.
	ThrottleAttempts int

	// Backoff is the delay schedule before jitter. nil means DefaultBackoff.
	Backoff Backoff

	// ThrottleBackoff, if set, is the schedule used after a throttle
	// (Throttled) instead of Backoff; the AWS SDKs use a 1 s base for
	// throttles and 50 ms for other errors. nil means Backoff.
	ThrottleBackoff Backoff

	// Jitter spreads each delay. nil means FullJitter.
	Jitter Jitter

	// MaxElapsed bounds the whole call, measured from the start of the first
	// attempt: the loop gives up, rather than sleep past it. 0 means no
	// bound other than the context.
	MaxElapsed time.Duration

	// AttemptTimeout, if positive, gives each attempt its own context with
	// this timeout. An attempt that runs out of its own time is retried; the
	// caller's deadline or cancellation never is. 0 means none.
	AttemptTimeout time.Duration

	// MaxHint clamps a server's delay hint (RetryAfter, Hinter) before it
	// is spread. A hint is a floor over the schedule's jittered delay, never
	// a shortcut: the loop waits the longer of the two, so a hinted delay is
	// at most max(schedule, MaxHint·(1+HintSpread)). A zero, negative or
	// past hint leaves the schedule's delay. 0 means DefaultMaxHint.
	MaxHint time.Duration

	// HintSpread is the fraction of a hint, in (0, 1], added at random above
	// it (after the MaxHint clamp, so clients told the same long hint still
	// come back spread). 0 means DefaultHintSpread; NoSpread obeys hints
	// exactly.
	HintSpread float64

	// Classifier decides which errors to retry. nil, or an Unknown answer,
	// means the built-in rule: throttles (IsThrottle) are Throttled and every
	// other error is retried. Permanent errors and the caller's context
	// errors are never retried, whatever the classifier says.
	Classifier Classifier

	// Budget, if set, is a retry budget shared with other calls: a retry
	// happens only if the budget grants it.
	Budget *Budget

	// Limiter, if set, is a client-side rate limiter shared by all callers
	// of one resource (an *AdaptiveLimiter, or any Limiter): every attempt,
	// the first included, waits for its send slot, and every outcome is
	// reported to it. A calm AdaptiveLimiter adds about 25 ns and no
	// allocation to a call (BENCHMARKS.md).
	Limiter Limiter

	// Observer, if set, is told of every retry and of giving up.
	Observer Observer

	// Rand returns uniform numbers in [0, 1) for jitter. nil means
	// math/rand/v2's per-thread generator (no lock). Use NewRand(seed) for
	// reproducible runs. It must be safe for concurrent use.
	Rand func() float64
}

var zeroPolicy Policy

func (p *Policy) maxAttempts() int {
	switch {
	case p.MaxAttempts == 0:
		return DefaultMaxAttempts
	case p.MaxAttempts < 0:
		return math.MaxInt
	}
	return p.MaxAttempts
}

func (p *Policy) backoff(throttled bool) Backoff {
	if throttled && p.ThrottleBackoff != nil {
		return p.ThrottleBackoff
	}
	if p.Backoff != nil {
		return p.Backoff
	}
	return DefaultBackoff
}

func (p *Policy) jitter() Jitter {
	if p.Jitter != nil {
		return p.Jitter
	}
	return FullJitter
}

func (p *Policy) maxHint() time.Duration {
	if p.MaxHint > 0 {
		return p.MaxHint
	}
	return DefaultMaxHint
}

func (p *Policy) hintSpread() float64 {
	switch {
	case p.HintSpread == 0:
		return DefaultHintSpread
	case p.HintSpread < 0:
		return 0
	}
	return min(p.HintSpread, 1)
}

func (p *Policy) rand() float64 {
	if p.Rand != nil {
		return unit(p.Rand())
	}
	return rand.Float64()
}

type validator interface{ Validate() error }

// check returns nil if p is valid and Validate's error otherwise; for the
// package's own types it decides with a few comparisons (no interface
// method calls, no allocation).
func (p *Policy) check() error {
	if p.fastValid() {
		return nil
	}
	return p.Validate()
}

// fastValid reports whether p is certainly valid without calling any
// method through an interface; false means "ask Validate" (which is then
// the authority: fastValid may be false for a valid Policy of unknown types).
func (p *Policy) fastValid() bool {
	return p.scalarsValid() && p.fastValidFields()
}

// scalarsValid reports whether the fields a successful first attempt
// depends on are in range: a few comparisons, inlined into Do.
func (p *Policy) scalarsValid() bool {
	h := p.HintSpread
	return p.MaxAttempts >= Unlimited && p.ThrottleAttempts >= 0 && p.MaxElapsed >= 0 && p.AttemptTimeout >= 0 && p.MaxHint >= 0 &&
		((h >= 0 && h <= 1) || h == NoSpread)
}

func (p *Policy) fastValidFields() bool {
	if !fastValidBackoff(p.Backoff) || !fastValidBackoff(p.ThrottleBackoff) {
		return false
	}
	switch j := p.Jitter.(type) {
	case nil, fullJitter, equalJitter, decorrelatedJitter, noJitter:
	case JitterFunc:
		if j == nil {
			return false
		}
	default:
		return false
	}
	if !fastValidClassifier(p.Classifier) {
		return false
	}
	if p.Budget != nil && p.Budget.Validate() != nil {
		return false
	}
	switch p.Limiter.(type) {
	case nil, *AdaptiveLimiter: // its config was validated by NewAdaptiveLimiter; the zero value is valid
	default:
		return false
	}
	return true
}

func fastValidBackoff(b Backoff) bool {
	switch x := b.(type) {
	case nil:
		return true
	case Exponential:
		return x.Validate() == nil
	case Constant:
		return x.Interval >= 0
	case Linear:
		return x.Validate() == nil
	case backoffFunc:
		return x.f != nil
	}
	return false
}

func fastValidClassifier(c Classifier) bool {
	switch x := c.(type) {
	case nil:
		return true
	case ClassifierFunc:
		return x != nil
	case Classifiers:
		for _, e := range x {
			if !fastValidClassifier(e) {
				return false
			}
		}
		return true
	}
	return false
}

// Validate reports every field that is out of range, each error naming the
// field, its value and what is allowed. A nil error means the Policy is
// valid.
func (p *Policy) Validate() error {
	if p == nil {
		return nil
	}
	var errs []error
	if p.MaxAttempts < 0 && p.MaxAttempts != Unlimited {
		errs = append(errs, fieldError("Policy.MaxAttempts", p.MaxAttempts, "must be ≥ 1, 0 for the default 3, or retry.Unlimited (-1)"))
	}
	for _, c := range [...]struct {
		name string
		v    any
	}{{"Policy.Backoff", p.Backoff}, {"Policy.ThrottleBackoff", p.ThrottleBackoff}, {"Policy.Jitter", p.Jitter}, {"Policy.Budget", p.Budget}, {"Policy.Limiter", p.Limiter}} {
		if v, ok := c.v.(validator); ok && !isNilPtr(c.v) {
			if err := v.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			}
		}
	}
	if p.ThrottleAttempts < 0 {
		errs = append(errs, fieldError("Policy.ThrottleAttempts", p.ThrottleAttempts, "must be ≥ 0 (0: throttles count against MaxAttempts)"))
	}
	if p.MaxElapsed < 0 {
		errs = append(errs, fieldError("Policy.MaxElapsed", p.MaxElapsed, "must be ≥ 0 (0 means no bound)"))
	}
	if p.AttemptTimeout < 0 {
		errs = append(errs, fieldError("Policy.AttemptTimeout", p.AttemptTimeout, "must be ≥ 0 (0 means none)"))
	}
	if p.MaxHint < 0 {
		errs = append(errs, fieldError("Policy.MaxHint", p.MaxHint, "must be ≥ 0 (0 means the default 20s)"))
	}
	if h := p.HintSpread; math.IsNaN(h) || h > 1 || (h < 0 && h != NoSpread) {
		errs = append(errs, fieldError("Policy.HintSpread", h, "must be in [0, 1] (0 means the default 0.1) or retry.NoSpread (-1)"))
	}
	if f, ok := p.Jitter.(JitterFunc); ok && f == nil {
		errs = append(errs, errors.New("retry: Policy.Jitter is a nil JitterFunc: set a function, or leave Jitter nil for FullJitter"))
	}
	errs = append(errs, nilClassifiers("Policy.Classifier", p.Classifier)...)
	return errors.Join(errs...)
}

// nilClassifiers reports typed-nil ClassifierFuncs in c, and in the
// Classifiers it holds, which would otherwise panic when first asked.
func nilClassifiers(name string, c Classifier) []error {
	switch x := c.(type) {
	case ClassifierFunc:
		if x == nil {
			return []error{fmt.Errorf("retry: %s is a nil ClassifierFunc: set a function, or leave it nil for the built-in rule", name)}
		}
	case Classifiers:
		var errs []error
		for i, e := range x {
			errs = append(errs, nilClassifiers(fmt.Sprintf("%s[%d]", name, i), e)...)
		}
		return errs
	}
	return nil
}

func isNilPtr(v any) bool {
	switch x := v.(type) {
	case *Budget:
		return x == nil
	case *AdaptiveLimiter:
		return x == nil
	}
	return v == nil
}

// String describes the effective configuration, defaults resolved.
func (p *Policy) String() string {
	if p == nil {
		p = &zeroPolicy
	}
	attempts := fmt.Sprint(p.maxAttempts())
	if p.MaxAttempts < 0 {
		attempts = "unlimited"
	}
	s := fmt.Sprintf("attempts=%s backoff=%v jitter=%v", attempts, p.backoff(false), p.jitter())
	if p.ThrottleBackoff != nil {
		s += fmt.Sprintf(" throttle-backoff=%v", p.ThrottleBackoff)
	}
	if p.MaxElapsed > 0 {
		s += fmt.Sprintf(" max-elapsed=%v", p.MaxElapsed)
	}
	if p.AttemptTimeout > 0 {
		s += fmt.Sprintf(" attempt-timeout=%v", p.AttemptTimeout)
	}
	return s
}

// AttemptLimit returns the effective maximum number of attempts, and false
// when the Policy has no limit (MaxAttempts is Unlimited).
func (p *Policy) AttemptLimit() (n int, limited bool) {
	if p == nil {
		p = &zeroPolicy
	}
	if p.MaxAttempts < 0 {
		return 0, false
	}
	return p.maxAttempts(), true
}

// NextDelay returns the delay the Policy would sleep after the n-th failed
// attempt when no server hint applies: the schedule (ThrottleBackoff after a
// throttle) with the Policy's jitter, drawing from Rand. prev is the delay
// slept before the previous attempt (0 if none; DecorrelatedJitter grows
// from it). It is meant for hosts that own the retry loop, such as the AWS
// SDK's retry middleware; Do and Run call it internally.
func (p *Policy) NextDelay(n int, throttled bool, prev time.Duration) time.Duration {
	if p == nil {
		p = &zeroPolicy
	}
	b := p.backoff(throttled)
	return p.jitter().Apply(JitterInput{Delay: b.Delay(n), Prev: prev, Base: b.Delay(1), Cap: b.Max()}, p.rand())
}
