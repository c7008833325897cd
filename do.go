package retry

import (
	"context"
	"errors"
	"time"
)

// Do calls op until it succeeds or the Policy says to give up, sleeping the
// Policy's delays in between. It returns nil on success, or a *Error saying
// why it gave up and wrapping the last error. A nil Policy means the zero
// Policy.
//
// op receives ctx, or a child of it with Policy.AttemptTimeout. Do never
// sleeps past ctx's deadline: if the next delay would end after it, Do gives
// up at once with ReasonDeadline. If ctx ends during a sleep, Do returns at
// once with ReasonContext; errors.Is then finds both ctx's error (or cause)
// and the last attempt's error.
//
// When the first attempt succeeds and the Policy has no AttemptTimeout,
// Budget or MaxElapsed, Do does not allocate and does not read the clock;
// a Limiter that is not limiting (a calm AdaptiveLimiter) keeps it so.
func (p *Policy) Do(ctx context.Context, op func(context.Context) error) error {
	if op == nil {
		panic("retry: nil op: Do and DoValue need a function to call")
	}
	_, err := doValue(ctx, p, func(ctx context.Context) (struct{}, error) { return struct{}{}, op(ctx) })
	return err
}

// DoValue is Do for an operation that returns a value. On success it returns
// the value; on giving up it returns the last attempt's value and the *Error.
func DoValue[T any](ctx context.Context, p *Policy, op func(context.Context) (T, error)) (T, error) {
	return doValue(ctx, p, op)
}

func doValue[T any](ctx context.Context, p *Policy, op func(context.Context) (T, error)) (T, error) {
	if ctx == nil {
		panic("retry: nil Context (use context.Background())")
	}
	if op == nil {
		panic("retry: nil op: Do and DoValue need a function to call")
	}
	if p == nil {
		p = &zeroPolicy
	}
	if !p.scalarsValid() {
		var zero T
		r := Run{p: p, ctx: ctx}
		return zero, r.giveUp(time.Time{}, ReasonInvalid, nil, p.Validate())
	}
	if err := ctx.Err(); err != nil {
		var zero T
		r := Run{p: p, ctx: ctx}
		return zero, r.giveUp(time.Time{}, ReasonContext, nil, context.Cause(ctx))
	}
	if p.AttemptTimeout > 0 || p.MaxElapsed > 0 || p.Budget != nil {
		return loop(ctx, p, op, false, *new(T), nil)
	}
	if l := p.Limiter; l != nil {
		// Ask for the first slot without reading the clock: a calm limiter
		// grants it at once. Otherwise give it back and let the loop wait
		// for it on real time.
		dl, _ := ctx.Deadline()
		t, wait, ok := l.ReserveAt(time.Time{}, time.Time{}, dl)
		if !ok || wait > 0 {
			l.CancelAt(time.Time{}, t)
			return loop(ctx, p, op, false, *new(T), nil)
		}
		v, err := op(ctx)
		if err == nil {
			l.ObserveAt(time.Time{}, OutcomeAccepted)
			firstSucceeded(ctx, p)
			return v, nil
		}
		return loop(ctx, p, op, true, v, err)
	}
	// Fast path: nothing to set up before the first attempt.
	v, err := op(ctx)
	if err == nil {
		firstSucceeded(ctx, p)
		return v, nil
	}
	return loop(ctx, p, op, true, v, err)
}

// loop is the retry loop. When first is true, the first attempt has already
// run (the fast path) and returned v, err.
func loop[T any](ctx context.Context, p *Policy, op func(context.Context) (T, error), first bool, v T, err error) (T, error) {
	var now time.Time
	clocked := p.MaxElapsed > 0 || p.Limiter != nil || (p.Budget != nil && p.Budget.clocked())
	if clocked {
		now = time.Now()
	}
	r := p.StartContext(ctx, now)
	var timer *time.Timer
	stop := func() {
		if timer != nil {
			timer.Stop()
		}
	}
	for {
		timedOut := false
		if first {
			first = false
			if clocked {
				now = time.Now()
			}
		} else {
			// Wait out the delay (and the limiter's line, if any).
			dl, _ := ctx.Deadline()
			for {
				now = time.Now()
				wait, ok := r.ReserveAt(now, dl)
				if !ok {
					stop()
					return v, r.giveUp(now, ReasonDeadline, err, errors.New("retry: the adaptive limiter's next send slot is after the context deadline (client-side)"))
				}
				if wait <= 0 {
					break
				}
				if cerr := sleep(ctx, &timer, wait); cerr != nil {
					t := time.Now()
					r.cancelSlot(t)
					if t.Before(r.earliest) {
						r.waited -= r.earliest.Sub(t) // count only what was slept
					}
					return v, r.giveUp(t, ReasonContext, err, cerr)
				}
			}
			actx, cancel := ctx, context.CancelFunc(nil)
			if p.AttemptTimeout > 0 {
				actx, cancel = context.WithTimeout(ctx, p.AttemptTimeout)
			}
			v, err = op(actx)
			if cancel != nil {
				timedOut = actx.Err() != nil && ctx.Err() == nil
				cancel()
			}
			if clocked || err != nil {
				now = time.Now()
			}
		}
		if err != nil && now.IsZero() {
			now = time.Now()
		}
		if err == nil {
			if p.Limiter != nil || p.Budget != nil || p.Observer != nil {
				r.SucceededAt(now)
			}
			stop()
			return v, nil
		}
		if ctx.Err() != nil {
			r.attempts++
			stop()
			return v, r.giveUp(now, ReasonContext, err, context.Cause(ctx))
		}
		d, kind := Unknown, KindTransient
		switch {
		case IsPermanent(err):
			d = Stop
		case timedOut && errors.Is(err, context.DeadlineExceeded):
			d, kind = Retry, KindTimeout
		}
		dl, _ := ctx.Deadline()
		delay, gerr := r.failed(now, err, d, kind, dl)
		if gerr != nil {
			stop()
			return v, gerr
		}
		if delay <= 0 && ctx.Err() != nil {
			stop()
			return v, r.giveUp(now, ReasonContext, err, context.Cause(ctx))
		}
	}
}

// firstSucceeded tells a ContextObserver that the first attempt succeeded
// on a fast path (no Run).
func firstSucceeded(ctx context.Context, p *Policy) {
	if o := p.Observer; o != nil {
		if co, ok := o.(ContextObserver); ok {
			co.OnSuccessContext(ctx, SuccessEvent{Attempts: 1})
		}
	}
}

// sleep waits d or until ctx ends, whichever is first, reusing *t.
func sleep(ctx context.Context, t **time.Timer, d time.Duration) error {
	if *t == nil {
		*t = time.NewTimer(d)
	} else {
		(*t).Reset(d)
	}
	select {
	case <-(*t).C:
		return nil
	case <-ctx.Done():
		(*t).Stop()
		return context.Cause(ctx)
	}
}
