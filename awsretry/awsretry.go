// Package awsretry plugs the retry package into the AWS SDK for Go v2: a
// Retryer (aws.RetryerV2) built from a retry.Policy, a retry budget and an
// adaptive limiter, with the SDK's own error classification.
//
// One line per client:
//
//	client := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
//		o.Retryer = awsretry.New()
//	})
//
// or once for every client of a config:
//
//	r := awsretry.New()
//	cfg.Retryer = func() aws.Retryer { return r }
//
// A Retryer holds the shared state (budget, limiter) of the clients it is
// given to: give one Retryer to all clients of one resource, and separate
// Retryers to unrelated resources.
//
// Modes: New is the recommended setup (an adaptive Goodput limiter pacing
// every attempt, short jittered delays after throttles, a budget that
// charges only non-throttle errors). Standard and StandardDynamoDB reproduce
// the SDK's standard retry mode (its 2026 behaviour), Adaptive and
// AdaptiveDynamoDB its adaptive mode, for drop-in parity.
//
// The SDK's retry middleware, not the Retryer, applies the x-amz-retry-after
// header (clamped to [delay, delay + 5 s]) and sleeps; RetryDelay therefore
// returns the plain computed backoff, as the SDK's own retryers do.
package awsretry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"

	"github.com/jittered/retry"
)

// Options configure a Retryer.
type Options struct {
	// Policy gives the attempts, the schedules (Backoff, ThrottleBackoff),
	// the jitter and its Rand, the Budget and the Limiter. Its Classifier,
	// if set, is asked before the SDK's classifiers. Its MaxElapsed,
	// AttemptTimeout, MaxHint and Observer do not apply: the SDK's
	// middleware owns the loop.
	Policy retry.Policy

	// Retryables, Throttles and Timeouts are the SDK's classifiers; nil
	// means the SDK's defaults (aws/retry DefaultRetryables,
	// DefaultThrottles, DefaultTimeouts).
	Retryables []awsretry.IsErrorRetryable
	Throttles  []awsretry.IsErrorThrottle
	Timeouts   []awsretry.IsErrorTimeout
}

// Retryer is an aws.RetryerV2 driven by a retry.Policy. It is safe for
// concurrent use by any number of clients and requests.
type Retryer struct {
	p          retry.Policy
	retryables awsretry.IsErrorRetryables
	throttles  awsretry.IsErrorThrottles
	timeouts   awsretry.IsErrorTimeouts
	now        func() time.Time
}

var _ aws.RetryerV2 = (*Retryer)(nil)

func build(o Options, optFns []func(*Options)) *Retryer {
	for _, fn := range optFns {
		fn(&o)
	}
	r := &Retryer{p: o.Policy, now: time.Now}
	r.retryables = append(awsretry.IsErrorRetryables{}, o.Retryables...)
	if o.Retryables == nil {
		r.retryables = append(awsretry.IsErrorRetryables{}, awsretry.DefaultRetryables...)
	}
	r.throttles = append(awsretry.IsErrorThrottles{}, o.Throttles...)
	if o.Throttles == nil {
		r.throttles = append(awsretry.IsErrorThrottles{}, awsretry.DefaultThrottles...)
	}
	r.timeouts = append(awsretry.IsErrorTimeouts{}, o.Timeouts...)
	if o.Timeouts == nil {
		r.timeouts = append(awsretry.IsErrorTimeouts{}, awsretry.DefaultTimeouts...)
	}
	return r
}

// Policy returns a copy of the Retryer's Policy (its Budget and Limiter are
// the shared ones).
func (r *Retryer) Policy() retry.Policy { return r.p }

func (r *Retryer) decide(err error) retry.Decision {
	if err == nil {
		return retry.Unknown
	}
	if c := r.p.Classifier; c != nil {
		switch d := c.Classify(err); d {
		case retry.Retry, retry.Throttled, retry.Stop:
			return d
		}
	}
	if retry.IsPermanent(err) {
		return retry.Stop
	}
	if !r.retryables.IsErrorRetryable(err).Bool() {
		return retry.Stop
	}
	if r.throttles.IsErrorThrottle(err).Bool() {
		return retry.Throttled
	}
	return retry.Retry
}

// IsErrorRetryable reports whether err is worth retrying: the Policy's
// Classifier if it decides, else the SDK's retryable checks (throttle and
// transient codes, 500/502/503/504, connection errors, clock skew, …).
func (r *Retryer) IsErrorRetryable(err error) bool {
	d := r.decide(err)
	return d == retry.Retry || d == retry.Throttled
}

// IsErrorThrottle reports whether err is a throttle.
func (r *Retryer) IsErrorThrottle(err error) bool { return r.decide(err) == retry.Throttled }

// MaxAttempts returns the Policy's attempt limit (0: unlimited, as the SDK
// reads it).
func (r *Retryer) MaxAttempts() int {
	n, ok := r.p.AttemptLimit()
	if !ok {
		return 0
	}
	return n
}

// RetryDelay returns the backoff after the attempt-th attempt (1-based)
// failed with err: the Policy's ThrottleBackoff after a throttle, else its
// Backoff, with its jitter. DecorrelatedJitter sees no previous sleep here
// (the SDK keeps no per-request state for it) and behaves as from the base.
func (r *Retryer) RetryDelay(attempt int, err error) (time.Duration, error) {
	return r.p.NextDelay(attempt, r.IsErrorThrottle(err), 0), nil
}

// ErrQuotaExceeded is wrapped by GetRetryToken's error when the budget
// refuses a retry; errors.Is also finds retry.ErrBudgetExhausted.
var ErrQuotaExceeded = fmt.Errorf("awsretry: %w", retry.ErrBudgetExhausted)

func (r *Retryer) kind(err error) retry.Kind {
	switch {
	case r.IsErrorThrottle(err):
		return retry.KindThrottle
	case r.timeouts.IsErrorTimeout(err).Bool():
		return retry.KindTimeout
	}
	return retry.KindTransient
}

// GetRetryToken takes the retry's cost from the budget, or refuses with a
// client-side error. Its release returns the cost when the retry succeeds
// (if the budget refunds on success) or ends in a non-retryable error.
func (r *Retryer) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	b := r.p.Budget
	if b == nil {
		return nop, nil
	}
	now := r.now()
	b.FailedAt(now)
	kind := r.kind(opErr)
	cost, ok := b.AcquireAt(now, kind)
	if !ok {
		return nil, fmt.Errorf("%w: %.0f tokens left, a %s retry costs more", ErrQuotaExceeded, b.TokensAt(now), kind)
	}
	return func(err error) error {
		switch {
		case err == nil && b.Config().RefundOnSuccess:
			// The attempt token adds the first-try reward on every success;
			// the SDK gives it to first tries only, so take it back here.
			b.RefundAt(r.now(), cost-b.Config().FirstTryReward)
		case err != nil && !r.IsErrorRetryable(err):
			b.RefundAt(r.now(), cost)
		}
		return nil
	}, nil
}

// GetAttemptToken waits for the adaptive limiter's send slot, if there is a
// limiter (giving up at once, client-side, if the slot is after ctx's
// deadline). Its release feeds the attempt's outcome to the limiter and
// adds the budget's rewards for a success.
func (r *Retryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	if l := r.p.Limiter; l != nil {
		ok, err := retry.WaitSlot(ctx, l)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errors.New("awsretry: the adaptive limiter's next send slot is after the context deadline (client-side)")
		}
	}
	return r.release, nil
}

// GetInitialToken is GetAttemptToken without the limiter's wait.
//
// Deprecated: the SDK calls GetAttemptToken.
func (r *Retryer) GetInitialToken() func(error) error { return r.release }

func (r *Retryer) release(err error) error {
	now := r.now()
	if l := r.p.Limiter; l != nil {
		l.ObserveAt(now, r.outcome(err))
	}
	if b := r.p.Budget; b != nil && err == nil {
		b.SucceededAt(now, 1, 0)
	}
	return nil
}

// outcome is what the limiter is told of an attempt's error.
func (r *Retryer) outcome(err error) retry.Outcome {
	switch {
	case err == nil:
		return retry.OutcomeAccepted
	case r.IsErrorThrottle(err):
		return retry.OutcomeThrottled
	case r.IsErrorRetryable(err):
		return retry.OutcomeFailed
	}
	return retry.OutcomeAccepted // answered, not worth retrying: it was served
}

func nop(error) error { return nil }
