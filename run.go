package retry

import (
	"context"
	"errors"
	"math"
	"time"
)

// Run is the state of one retried operation, for callers that drive their
// own loop (a queue consumer, a simulator in virtual time) with exactly the
// decisions Do makes. Do itself is a Run driven by real timers.
//
//	r := p.Start(now)
//	for {
//		wait, ok := r.ReserveAt(now, deadline) // adaptive limiter, if any
//		… wait, attempt …
//		if err == nil { r.SucceededAt(now); break }
//		delay, giveUp := r.FailedAt(now, err, deadline)
//		if giveUp != nil { return giveUp }
//		… sleep delay …
//	}
//
// A Run is a value owned by one goroutine; it must not be copied after
// first use.
type Run struct {
	p        *Policy
	start    time.Time
	attempts int
	paced    int // throttled attempts counted against ThrottleAttempts
	prev     time.Duration
	waited   time.Duration
	paid     float64   // budget tokens taken for the retry in flight
	checked  bool      // Policy validated
	ticket   Ticket    // a place in the limiter's line, not yet due
	earliest time.Time // the next attempt is not sent before this
	queued   time.Duration
	ctx      context.Context // for a ContextObserver; nil: Background
}

// Start begins a Run at now. The zero now is allowed when the Policy has no
// MaxElapsed, no refilling Budget and no Limiter.
func (p *Policy) Start(now time.Time) Run {
	if p == nil {
		p = &zeroPolicy
	}
	r := Run{p: p, start: now}
	if p.Budget != nil {
		p.Budget.StartAt(now)
	}
	return r
}

// StartContext is Start for a Run whose events a ContextObserver should
// receive with ctx (the caller's context: its trace span, its values).
func (p *Policy) StartContext(ctx context.Context, now time.Time) Run {
	r := p.Start(now)
	r.ctx = ctx
	return r
}

func (r *Run) context() context.Context {
	if r.ctx != nil {
		return r.ctx
	}
	return context.Background()
}

// Attempts returns the number of attempts finished so far.
func (r *Run) Attempts() int { return r.attempts }

// Waited returns the total delay handed out so far.
func (r *Run) Waited() time.Duration { return r.waited }

// ReserveAt says how long to wait before the next attempt may be sent, at
// now: the delay FailedAt decided, and the Policy's Limiter, if any. Call it
// until it returns 0, waiting what it returns in between; then send. ok is
// false, and nothing is held, when the limiter's slot would begin after
// deadline (zero: none).
//
// With a limiter, the delay and the line overlap: the attempt joins the line
// so as to reach its head when the delay ends, rather than queueing after
// it, and it is never sent before the delay ends (a server's Retry-After is
// a floor).
func (r *Run) ReserveAt(now, deadline time.Time) (wait time.Duration, ok bool) {
	l := r.p.Limiter
	if l == nil {
		if now.Before(r.earliest) {
			return r.earliest.Sub(now), true
		}
		return 0, true
	}
	if r.ticket == 0 {
		t, wait, ok := l.ReserveAt(now, r.earliest, deadline)
		if !ok {
			return wait, false
		}
		if wait > 0 {
			r.ticket = t // 0: nothing held, ask again after the wait
			return wait, true
		}
	} else {
		if wait := l.WaitAt(now, r.ticket); wait > 0 {
			return wait, true
		}
		r.ticket = 0
	}
	if now.Before(r.earliest) {
		return r.earliest.Sub(now), true
	}
	// Sent: the time past the delay's end (or the Run's start, for the
	// first attempt) was spent waiting for the limiter.
	ready := r.earliest
	if ready.IsZero() {
		ready = r.start
	}
	if !ready.IsZero() && now.After(ready) {
		r.queued += now.Sub(ready)
	}
	return 0, true
}

// Queued returns the time spent waiting for the Policy's Limiter beyond the
// delays, so far.
func (r *Run) Queued() time.Duration { return r.queued }

// cancelSlot gives up a place in the limiter's line that will not be used.
func (r *Run) cancelSlot(now time.Time) {
	if r.ticket != 0 {
		r.p.Limiter.CancelAt(now, r.ticket)
		r.ticket = 0
	}
}

// SucceededAt records that the attempt answered at now succeeded.
func (r *Run) SucceededAt(now time.Time) {
	r.attempts++
	if l := r.p.Limiter; l != nil {
		l.ObserveAt(now, OutcomeAccepted)
	}
	if b := r.p.Budget; b != nil {
		b.SucceededAt(now, r.attempts, r.paid)
		r.paid = 0
	}
	if o := r.p.Observer; o != nil {
		if co, ok := o.(ContextObserver); ok {
			co.OnSuccessContext(r.context(), SuccessEvent{Attempts: r.attempts, Waited: r.waited, Queued: r.queued})
		}
	}
}

// FailedAt records that the attempt answered at now failed with err (not
// nil), and returns either the delay before the next attempt or the error to
// give up with. deadline (zero: none) is the caller's deadline: a delay
// ending after it gives up now.
func (r *Run) FailedAt(now time.Time, err error, deadline time.Time) (time.Duration, *Error) {
	if err == nil {
		r.attempts++
		return 0, r.giveUp(now, ReasonInvalid, nil, errors.New("retry: Run.FailedAt called with a nil error"))
	}
	d := Unknown
	if IsPermanent(err) {
		d = Stop
	}
	return r.failed(now, err, d, KindTransient, deadline)
}

// failed is FailedAt with the decision precomputed: Unknown means "ask the
// classifier"; kind is KindTimeout for an attempt that hit its own timeout.
func (r *Run) failed(now time.Time, err error, d Decision, kind Kind, deadline time.Time) (time.Duration, *Error) {
	r.attempts++
	p := r.p
	if !r.checked {
		// Validated before the classifier or jitter runs: a typed-nil
		// ClassifierFunc or JitterFunc is an error here, not a panic.
		if verr := p.check(); verr != nil {
			return 0, r.giveUp(now, ReasonInvalid, err, verr)
		}
		r.checked = true
	}
	permanent := d == Stop && IsPermanent(err)
	if d == Unknown {
		d = p.classify(err)
	}
	throttled := d == Throttled
	if l := p.Limiter; l != nil {
		// A throttle cuts the rate; an answer not worth retrying was still
		// served; a transient failure (5xx, reset, timeout) says nothing
		// about capacity.
		o := OutcomeFailed
		switch {
		case throttled:
			o = OutcomeThrottled
		case d == Stop:
			o = OutcomeAccepted
		}
		l.ObserveAt(now, o)
	}
	switch {
	case permanent:
		return 0, r.giveUp(now, ReasonPermanent, err, nil)
	case d == Stop:
		return 0, r.giveUp(now, ReasonNotRetryable, err, nil)
	}
	if throttled {
		kind = KindThrottle
	}
	b := p.Budget
	if b != nil {
		b.FailedAt(now)
		r.paid = 0 // consumed: this retry failed again
	}
	switch {
	case p.ThrottleAttempts > 0 && p.Limiter != nil && throttled:
		// A throttle the limiter paces: counted apart.
		r.paced++
		if r.paced >= p.ThrottleAttempts {
			return 0, r.giveUp(now, ReasonMaxAttempts, err, nil)
		}
	case r.attempts-r.paced >= p.maxAttempts():
		return 0, r.giveUp(now, ReasonMaxAttempts, err, nil)
	}
	delay := r.delay(err, throttled)
	if p.MaxElapsed > 0 && !r.start.IsZero() && now.Add(delay).Sub(r.start) > p.MaxElapsed {
		return 0, r.giveUp(now, ReasonMaxElapsed, err, nil)
	}
	if !deadline.IsZero() && now.Add(delay).After(deadline) {
		return 0, r.giveUp(now, ReasonDeadline, err, nil)
	}
	if b != nil {
		cost, ok := b.AcquireAt(now, kind)
		if !ok {
			return 0, r.giveUp(now, ReasonBudget, err, nil)
		}
		r.paid = cost
	}
	if o := p.Observer; o != nil {
		e := RetryEvent{Attempt: r.attempts, Err: err, Delay: delay, Throttled: throttled, Kind: kind}
		if co, ok := o.(ContextObserver); ok {
			co.OnRetryContext(r.context(), e)
		} else {
			o.OnRetry(e)
		}
	}
	r.prev = delay
	r.waited += delay
	r.earliest = now.Add(delay)
	return delay, nil
}

// delay computes the next delay: the schedule with jitter, raised to the
// server's hint if there is a longer one. The hint is clamped to MaxHint
// and then spread by HintSpread, so clients told the same long hint still
// come back spread: the result is at most MaxHint·(1 + HintSpread), or the
// schedule's delay if that is longer. A SlackHinter's hint is further bounded
// by the schedule's delay plus its slack (the AWS SDKs' rule).
func (r *Run) delay(err error, throttled bool) time.Duration {
	p := r.p
	d := p.NextDelay(r.attempts, throttled, r.prev)
	h, slack, ok := hint(err)
	if !ok {
		return d
	}
	h = min(h, p.maxHint())
	if s := p.hintSpread(); s > 0 {
		// In float, saturating: a hint near the largest Duration would
		// overflow into a negative delay.
		if f := float64(h) * (1 + s*p.rand()); f < math.MaxInt64 {
			h = time.Duration(f)
		} else {
			h = math.MaxInt64
		}
	}
	if slack > 0 && d <= math.MaxInt64-slack {
		h = min(h, d+slack)
	}
	return max(d, h)
}

// EndAt records that the loop ended at now for a reason other than an
// attempt's own outcome (the caller's context ended while waiting): a place
// held in the limiter's line is given back, any budget tokens held for the
// pending retry are returned, and the give-up error is built.
func (r *Run) EndAt(now time.Time, reason Reason, last, cause error) *Error {
	r.cancelSlot(now)
	return r.giveUp(now, reason, last, cause)
}

func (r *Run) giveUp(now time.Time, reason Reason, last, cause error) *Error {
	if b := r.p.Budget; b != nil && r.paid > 0 {
		// The retry we paid for ended in neither a success nor another
		// retryable failure: return its cost.
		b.RefundAt(now, r.paid)
		r.paid = 0
	}
	e := &Error{Reason: reason, Attempts: r.attempts, Waited: r.waited, Queued: r.queued, Last: last, Cause: cause}
	if o := r.p.Observer; o != nil {
		if co, ok := o.(ContextObserver); ok {
			co.OnGiveUpContext(r.context(), e)
		} else {
			o.OnGiveUp(e)
		}
	}
	return e
}
