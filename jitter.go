package retry

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// JitterInput is what a Jitter sees for one delay.
type JitterInput struct {
	// Delay is the schedule's capped delay for this step, d = min(Cap, …).
	Delay time.Duration
	// Prev is the delay actually slept before the previous attempt, or 0
	// before the first retry.
	Prev time.Duration
	// Base is the schedule's first delay (Backoff.Delay(1)).
	Base time.Duration
	// Cap is the schedule's cap (Backoff.Max()). No jittered delay exceeds it.
	Cap time.Duration
}

// A Jitter spreads a delay at random so that clients that failed together do
// not retry together. Apply receives the uniform random number u in [0, 1)
// as an argument, so the math is a pure function that tests can pin; the
// Policy supplies u from its Rand. The result must lie in [0, Cap].
type Jitter interface {
	Apply(in JitterInput, u float64) time.Duration
}

// The jitter modes of the AWS Architecture Blog post "Exponential Backoff And
// Jitter" (Marc Brooker, 2015), plus none. With d the capped delay and u
// uniform in [0, 1):
//
//	NoJitter            d
//	FullJitter          u·d                               (uniform in [0, d])
//	EqualJitter         d/2 + u·d/2                       (uniform in [d/2, d])
//	DecorrelatedJitter  min(Cap, Base + u·(3·Prev − Base)) (uniform in [Base, 3·Prev]), Prev starting at Base
//
// FullJitter is the default: in the blog's simulation it does the least work
// and finishes about as fast as any other mode.
var (
	NoJitter           Jitter = noJitter{}
	FullJitter         Jitter = fullJitter{}
	EqualJitter        Jitter = equalJitter{}
	DecorrelatedJitter Jitter = decorrelatedJitter{}
)

// PercentJitter returns the jitter d·(1 ± p·u'), with u' uniform in [-1, 1):
// a delay spread by up to p (a fraction in (0, 1]) either side of the
// schedule, as gRPC's backoff does with p = 0.2. The result is clamped to
// [0, Cap].
func PercentJitter(p float64) Jitter { return percentJitter{p: p} }

type noJitter struct{}

func (noJitter) Apply(in JitterInput, _ float64) time.Duration { return clampDur(in.Delay, in.Cap) }
func (noJitter) String() string                                { return "none" }

type fullJitter struct{}

func (fullJitter) Apply(in JitterInput, u float64) time.Duration {
	d := clampDur(in.Delay, in.Cap)
	return clampDur(time.Duration(float64(d)*unit(u)), in.Cap)
}
func (fullJitter) String() string { return "full" }

type equalJitter struct{}

func (equalJitter) Apply(in JitterInput, u float64) time.Duration {
	d := clampDur(in.Delay, in.Cap)
	half := d / 2
	return clampDur(half+time.Duration(float64(d-half)*unit(u)), in.Cap)
}
func (equalJitter) String() string { return "equal" }

type decorrelatedJitter struct{}

func (decorrelatedJitter) Apply(in JitterInput, u float64) time.Duration {
	limit := max(in.Cap, 0)
	base := clampDur(in.Base, limit)
	prev := max(in.Prev, base)
	hi := 3 * float64(prev) // float: 3·prev may overflow int64
	f := float64(base) + unit(u)*(hi-float64(base))
	if !(f < float64(limit)) {
		return limit
	}
	return clampDur(time.Duration(f), limit)
}
func (decorrelatedJitter) String() string { return "decorrelated" }

type percentJitter struct{ p float64 }

func (j percentJitter) Apply(in JitterInput, u float64) time.Duration {
	d := clampDur(in.Delay, in.Cap)
	p := j.p
	if !(p > 0) {
		return d
	}
	p = min(p, 1)
	f := float64(d) * (1 + p*(2*unit(u)-1))
	if !(f < float64(in.Cap)) {
		return max(in.Cap, 0)
	}
	return clampDur(time.Duration(f), in.Cap)
}
func (j percentJitter) String() string { return fmt.Sprintf("percent(%g)", j.p) }
func (j percentJitter) Validate() error {
	if math.IsNaN(j.p) || j.p <= 0 || j.p > 1 {
		return fieldError("PercentJitter.p", j.p, "must be in (0, 1]")
	}
	return nil
}

// JitterFunc adapts a function to Jitter. Its results are clamped to [0, Cap].
type JitterFunc func(in JitterInput, u float64) time.Duration

// Apply calls f and clamps the result to [0, in.Cap].
func (f JitterFunc) Apply(in JitterInput, u float64) time.Duration {
	return clampDur(f(in, unit(u)), in.Cap)
}

// unit maps any float to [0, 1]: a user's Rand that misbehaves cannot push a
// delay out of range. 1 itself is kept, so that a Rand pinned to 1 (as the
// AWS SDKs' test vectors pin theirs) gives the full delay to the nanosecond.
func unit(u float64) float64 {
	if !(u >= 0) { // NaN or negative
		return 0
	}
	return min(u, 1)
}

func clampDur(d, limit time.Duration) time.Duration {
	if limit < 0 {
		limit = 0
	}
	return min(max(d, 0), limit)
}

// NewRand returns a source of uniform numbers in [0, 1) seeded with seed, for
// reproducible runs (Policy.Rand). It is safe for concurrent use; its
// sequence is reproducible when one goroutine draws from it, or when the
// order of draws is itself deterministic.
func NewRand(seed uint64) func() float64 {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var mu sync.Mutex
	return func() float64 {
		mu.Lock()
		f := r.Float64()
		mu.Unlock()
		return f
	}
}
