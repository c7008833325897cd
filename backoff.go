package retry

import (
	"fmt"
	"math"
	"time"
)

// A Backoff is a delay schedule: a pure function from the number of failed
// attempts to the delay before the next one, before jitter. Implementations are
// values with no per-call state, so one Backoff serves any number of
// concurrent loops.
//
// Delay(n) is the delay after the n-th failed attempt (n ≥ 1), that is, before
// attempt n+1. It must lie in [0, Max()] for every n, including n close to
// math.MaxInt. Values of n below 1 are treated as 1.
type Backoff interface {
	Delay(n int) time.Duration
	// Max is the largest delay the schedule yields: its cap. Jitter never
	// produces a delay above it.
	Max() time.Duration
}

// Exponential is the schedule min(Cap, Base·Multiplierⁿ⁻¹): Base after the
// first failure, Base·Multiplier after the second, and so on up to Cap.
//
// The zero Multiplier means DefaultMultiplier (2) and the zero Cap means
// DefaultCap (20 s); Validate refuses a zero Cap with a Base above it. Base
// must be positive. The arithmetic saturates at Cap
// for every n up to math.MaxInt: the result is never negative, never above
// Cap, and never the product of an overflow.
type Exponential struct {
	Base       time.Duration
	Multiplier float64
	Cap        time.Duration
}

func (e Exponential) params() (base time.Duration, mult float64, limit time.Duration) {
	base, mult, limit = e.Base, e.Multiplier, e.Cap
	if mult == 0 {
		mult = DefaultMultiplier
	}
	if limit == 0 {
		limit = DefaultCap
	}
	if base < 0 {
		base = 0
	}
	if limit < base {
		limit = base
	}
	return base, mult, limit
}

// Delay returns min(Cap, Base·Multiplierⁿ⁻¹).
func (e Exponential) Delay(n int) time.Duration {
	base, mult, limit := e.params()
	if n < 1 {
		n = 1
	}
	if base == 0 {
		return 0
	}
	if !(mult > 1) || n == 1 { // also catches NaN
		return base
	}
	f := float64(base) * math.Pow(mult, float64(n-1))
	if !(f < float64(limit)) { // also catches +Inf and NaN
		return limit
	}
	return time.Duration(f)
}

// Max returns the cap.
func (e Exponential) Max() time.Duration { _, _, limit := e.params(); return limit }

// Validate reports whether the schedule's fields are in range.
func (e Exponential) Validate() error {
	if e.Base <= 0 {
		return fieldError("Exponential.Base", e.Base, "must be > 0")
	}
	if e.Multiplier != 0 && (math.IsNaN(e.Multiplier) || math.IsInf(e.Multiplier, 0) || e.Multiplier < 1) {
		return fieldError("Exponential.Multiplier", e.Multiplier, "must be a finite number ≥ 1, or 0 for the default 2")
	}
	if e.Cap < 0 || (e.Cap != 0 && e.Cap < e.Base) {
		return fieldError("Exponential.Cap", e.Cap, fmt.Sprintf("must be ≥ Base (%v), or 0 for the default %v", e.Base, DefaultCap))
	}
	if e.Cap == 0 && e.Base > DefaultCap {
		return fieldError("Exponential.Cap", e.Cap, fmt.Sprintf("0 means the default %v, which is below Base (%v): set Cap ≥ Base", DefaultCap, e.Base))
	}
	return nil
}

// String describes the schedule with its defaults resolved.
func (e Exponential) String() string {
	base, mult, limit := e.params()
	return fmt.Sprintf("exponential(base=%v, multiplier=%g, cap=%v)", base, mult, limit)
}

// Constant waits the same Interval after every failure.
type Constant struct {
	Interval time.Duration
}

// Delay returns Interval (0 if Interval is negative).
func (c Constant) Delay(int) time.Duration { return max(c.Interval, 0) }

// Max returns Interval.
func (c Constant) Max() time.Duration { return max(c.Interval, 0) }

// Validate reports whether Interval is in range. Zero is allowed: retry at once.
func (c Constant) Validate() error {
	if c.Interval < 0 {
		return fieldError("Constant.Interval", c.Interval, "must be ≥ 0")
	}
	return nil
}

// String describes the schedule.
func (c Constant) String() string { return fmt.Sprintf("constant(%v)", c.Interval) }

// Linear is the schedule min(Cap, Base + Step·(n−1)). The zero Step means
// Base, the zero Cap means DefaultCap.
type Linear struct {
	Base time.Duration
	Step time.Duration
	Cap  time.Duration
}

func (l Linear) params() (base, step, limit time.Duration) {
	base, step, limit = max(l.Base, 0), l.Step, l.Cap
	if step == 0 {
		step = base
	}
	if step < 0 {
		step = 0
	}
	if limit == 0 {
		limit = DefaultCap
	}
	if limit < base {
		limit = base
	}
	return base, step, limit
}

// Delay returns min(Cap, Base + Step·(n−1)).
func (l Linear) Delay(n int) time.Duration {
	base, step, limit := l.params()
	if n < 1 {
		n = 1
	}
	if step == 0 {
		return base
	}
	// Base + Step·k ≤ limit  ⇔  k ≤ (limit−Base)/Step; compare before multiplying.
	k := uint64(n - 1)
	if k > uint64((limit-base)/step) {
		return limit
	}
	return base + step*time.Duration(k)
}

// Max returns the cap.
func (l Linear) Max() time.Duration { _, _, limit := l.params(); return limit }

// Validate reports whether the schedule's fields are in range.
func (l Linear) Validate() error {
	if l.Base <= 0 {
		return fieldError("Linear.Base", l.Base, "must be > 0")
	}
	if l.Step < 0 {
		return fieldError("Linear.Step", l.Step, "must be ≥ 0 (0 means Base)")
	}
	if l.Cap < 0 || (l.Cap != 0 && l.Cap < l.Base) {
		return fieldError("Linear.Cap", l.Cap, fmt.Sprintf("must be ≥ Base (%v), or 0 for the default %v", l.Base, DefaultCap))
	}
	if l.Cap == 0 && l.Base > DefaultCap {
		return fieldError("Linear.Cap", l.Cap, fmt.Sprintf("0 means the default %v, which is below Base (%v): set Cap ≥ Base", DefaultCap, l.Base))
	}
	return nil
}

// String describes the schedule with its defaults resolved.
func (l Linear) String() string {
	base, step, limit := l.params()
	return fmt.Sprintf("linear(base=%v, step=%v, cap=%v)", base, step, limit)
}

// BackoffFunc adapts a function to Backoff. The function's results are
// clamped to [0, max].
func BackoffFunc(max time.Duration, f func(n int) time.Duration) Backoff {
	return backoffFunc{max: max, f: f}
}

type backoffFunc struct {
	max time.Duration
	f   func(int) time.Duration
}

func (b backoffFunc) Delay(n int) time.Duration {
	if b.f == nil {
		return 0
	}
	return min(max(b.f(max(n, 1)), 0), max(b.max, 0))
}
func (b backoffFunc) Max() time.Duration { return max(b.max, 0) }
func (b backoffFunc) Validate() error {
	if b.f == nil {
		return fieldError("BackoffFunc.f", "nil", "must be a function")
	}
	if b.max < 0 {
		return fieldError("BackoffFunc.max", b.max, "must be ≥ 0")
	}
	return nil
}
