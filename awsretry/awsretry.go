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
// A Retryer holds the shared state (budget, limiters) of the clients it is
// given to. New keys its adaptive limiter per service, operation and, with
// the KeyByResource API option, per resource (table, queue, bucket…), so one
// hot table throttling does not slow the others; the parity presets keep
// the SDK's one limiter per client.
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
//
// Backoff and the limiter's queue add up here, where in retry.Do they
// overlap: the SDK's middleware sleeps RetryDelay and only then asks
// GetAttemptToken, and tells the Retryer nothing that links the two calls
// (no attempt number or request identity reaches a Retryer), so the wait
// for a send slot cannot start during the sleep. The cost is one backoff per
// retry on top of the queue: with New's throttle backoff (full jitter over
// 25 ms doubling to a 100 ms cap) 12.5 ms on average after a first
// throttle, 25 ms after a second, 50 ms after a third and later.
package awsretry

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddle "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"

	"github.com/jittered/retry"
)

// Options configure a Retryer.
type Options struct {
	// Policy gives the attempts, the schedules (Backoff, ThrottleBackoff),
	// the jitter and its Rand, the Budget and the Limiter. Its Classifier,
	// if set, is asked before the SDK's classifiers. Its MaxElapsed,
	// AttemptTimeout and MaxHint do not apply: the SDK's middleware owns the
	// loop. Neither does its Observer: the SDK calls a Retryer without the
	// call's identity; the Observe API option reports each call instead.
	Policy retry.Policy

	// Retryables, Throttles and Timeouts are the SDK's classifiers; nil
	// means the SDK's defaults (aws/retry DefaultRetryables,
	// DefaultThrottles, DefaultTimeouts).
	Retryables []awsretry.IsErrorRetryable
	Throttles  []awsretry.IsErrorThrottle
	Timeouts   []awsretry.IsErrorTimeout

	// Limiters, if set, gives each service, operation and resource (see
	// KeyByResource) its own adaptive limiter from the set, in place of
	// Policy.Limiter. New sets it; the parity presets do not (the SDK's
	// adaptive mode has one limiter per client).
	Limiters *retry.LimiterSet
}

// Retryer is an aws.RetryerV2 driven by a retry.Policy. It is safe for
// concurrent use by any number of clients and requests.
type Retryer struct {
	p          retry.Policy
	limiters   *retry.LimiterSet
	retryables awsretry.IsErrorRetryables
	throttles  awsretry.IsErrorThrottles
	timeouts   awsretry.IsErrorTimeouts
	now        func() time.Time

	// The SDK tells a Retryer neither the attempt number nor which request
	// a call belongs to, but it releases a retry's token just before the
	// same attempt's token. Each retry release therefore leaves a mark that
	// the next attempt release consumes: that attempt was a retry, so it
	// earns no first-try reward and makes no first-attempt deposit. The
	// marks may be consumed by another request's release in between; the
	// totals, which are what a shared budget holds, are exact.
	retriesReleased, retriesSucceeded atomic.Int64
}

var _ aws.RetryerV2 = (*Retryer)(nil)

func build(o Options, optFns []func(*Options)) *Retryer {
	for _, fn := range optFns {
		fn(&o)
	}
	r := &Retryer{p: o.Policy, limiters: o.Limiters, now: time.Now}
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
// refuses a retry; errors.Is also finds retry.ErrBudgetExhausted, and
// errors.As finds the SDK's own ratelimit.QuotaExceededError, as code
// written against the SDK's retryers expects.
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
// client-side error wrapping ErrQuotaExceeded and a
// ratelimit.QuotaExceededError. Its release, called after the retry's
// attempt, returns the cost when that attempt succeeds (if the budget
// refunds on success) or ends in a non-retryable error.
func (r *Retryer) GetRetryToken(ctx context.Context, opErr error) (func(error) error, error) {
	b := r.p.Budget
	st := observed(ctx)
	if b == nil {
		if st != nil {
			st.retryGranted(r.now(), opErr, r.kind(opErr))
		}
		return func(error) error { return nil }, nil
	}
	now := r.now()
	b.FailedAt(now)
	kind := r.kind(opErr)
	cost, ok := b.AcquireAt(now, kind)
	if ok && st != nil {
		st.retryGranted(now, opErr, kind)
	}
	if !ok {
		avail := b.TokensAt(now)
		c := b.Config()
		want := c.RetryCost
		switch {
		case kind == retry.KindThrottle && c.ThrottleCost > 0:
			want = c.ThrottleCost
		case kind == retry.KindTimeout && c.TimeoutCost > 0:
			want = c.TimeoutCost
		}
		return nil, fmt.Errorf("%w: %w", ErrQuotaExceeded, ratelimit.QuotaExceededError{
			Available: uint(math.Floor(max(avail, 0))), Requested: uint(math.Ceil(want)),
		})
	}
	return func(err error) error {
		r.releaseRetry(err)
		switch {
		case err == nil && b.Config().RefundOnSuccess:
			b.RefundAt(r.now(), cost)
		case err != nil && !r.IsErrorRetryable(err):
			b.RefundAt(r.now(), cost)
		}
		return nil
	}, nil
}

// releaseRetry marks that the attempt about to be released was a retry.
func (r *Retryer) releaseRetry(err error) error {
	r.retriesReleased.Add(1)
	if err == nil {
		r.retriesSucceeded.Add(1)
	}
	return nil
}

// take consumes one mark of n, if there is one.
func take(n *atomic.Int64) bool {
	for {
		v := n.Load()
		if v <= 0 {
			return false
		}
		if n.CompareAndSwap(v, v-1) {
			return true
		}
	}
}

// GetAttemptToken waits for the adaptive limiter's send slot, if there is a
// limiter (giving up at once, client-side, if the slot is after ctx's
// deadline); with Options.Limiters, the limiter of the call's service,
// operation and resource. Its release feeds the attempt's outcome to that
// limiter and settles the budget: the first attempt's deposit
// (AttemptDeposit) and a success's rewards (SuccessReward, and
// FirstTryReward for a first try).
func (r *Retryer) GetAttemptToken(ctx context.Context) (func(error) error, error) {
	l := r.limiter(ctx)
	st := observed(ctx)
	var queued time.Duration
	if l != nil {
		var t0 time.Time
		if st != nil {
			t0 = r.now()
		}
		ok, err := retry.WaitSlot(ctx, l)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, errSlotAfterDeadline
		}
		if st != nil {
			queued = r.now().Sub(t0)
		}
	}
	if st != nil {
		st.attemptStarting(r.now(), queued)
	}
	return func(err error) error { return r.release(l, err) }, nil
}

// GetInitialToken is GetAttemptToken without the limiter's wait.
//
// Deprecated: the SDK calls GetAttemptToken.
func (r *Retryer) GetInitialToken() func(error) error {
	return func(err error) error { return r.release(r.p.Limiter, err) }
}

func (r *Retryer) release(l retry.Limiter, err error) error {
	now := r.now()
	if l != nil {
		l.ObserveAt(now, r.outcome(err))
	}
	b := r.p.Budget
	if b == nil {
		return nil
	}
	retried := take(&r.retriesReleased)
	if !retried {
		b.StartAt(now) // the first attempt's deposit (and refill)
	}
	if err == nil {
		attempt := 1
		if retried && take(&r.retriesSucceeded) {
			attempt = 2 // a successful retry: no first-try reward
		}
		b.SucceededAt(now, attempt, 0)
	}
	return nil
}

// limiter returns the limiter for ctx's call.
func (r *Retryer) limiter(ctx context.Context) retry.Limiter {
	if r.limiters == nil {
		return r.p.Limiter
	}
	return r.limiters.Get(limiterKey(ctx))
}

// limiterKey is "service/operation/resource" for the call in ctx.
func limiterKey(ctx context.Context) string {
	res, _ := middleware.GetStackValue(ctx, resourceKey{}).(string)
	return awsmiddle.GetServiceID(ctx) + "/" + awsmiddle.GetOperationName(ctx) + "/" + res
}

type resourceKey struct{}

// KeyByResource is an API option (for a client's Options.APIOptions) that
// names the resource of each call — the input's TableName, QueueUrl,
// Bucket, StreamName, StreamARN, TopicArn, FunctionName or the one table of
// a batch's RequestItems — so that a Retryer from New keeps one adaptive
// limiter per table, queue or bucket as well as per operation:
//
//	client := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
//		o.Retryer = awsretry.New()
//		o.APIOptions = append(o.APIOptions, awsretry.KeyByResource)
//	})
func KeyByResource(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("awsretry.KeyByResource",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			if res := resourceOf(in.Parameters); res != "" {
				ctx = middleware.WithStackValue(ctx, resourceKey{}, res)
			}
			return next.HandleInitialize(ctx, in)
		}), middleware.After)
}

var resourceFields = []string{"TableName", "QueueUrl", "Bucket", "StreamName", "StreamARN", "TopicArn", "FunctionName"}

// resourceOf finds the resource an operation's input names.
func resourceOf(params any) string {
	v := reflect.ValueOf(params)
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return ""
	}
	for _, name := range resourceFields {
		f := v.FieldByName(name)
		if f.IsValid() && f.Kind() == reflect.Pointer && !f.IsNil() && f.Elem().Kind() == reflect.String {
			return f.Elem().String()
		}
	}
	if f := v.FieldByName("RequestItems"); f.IsValid() && f.Kind() == reflect.Map && f.Len() == 1 {
		if k := f.MapKeys()[0]; k.Kind() == reflect.String {
			return k.String()
		}
	}
	return ""
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
