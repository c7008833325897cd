package awsretry

import (
	"context"
	"errors"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"

	"github.com/jittered/retry"
)

// Observe returns an API option (for a client's Options.APIOptions) that
// tells obs what each call's retries do, as retry.Do tells a Policy's
// Observer: every retry (RetryEvent), every give-up (*retry.Error, with its
// Reason) and, for a retry.ContextObserver, every success (SuccessEvent)
// and the call's context (its trace span). One line wires OpenTelemetry:
//
//	client := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
//		o.Retryer = awsretry.New()
//		o.APIOptions = append(o.APIOptions, awsretry.Observe(otelObserver))
//	})
//
// It needs a Retryer from this package (New, Standard, Adaptive, …): the
// SDK tells a Retryer about attempts and retries, but no other hook sees
// them. With another Retryer, only successes and give-ups are reported,
// with the attempt count the SDK records.
//
// The SDK's middleware, not the Retryer, sleeps between attempts (and
// applies x-amz-retry-after), so a retry is reported when its attempt
// starts, with the delay actually slept, rather than before the sleep as
// retry.Do does; a retry whose sleep the caller's context cut short is
// reported only in the give-up (ReasonContext). Queued is the time spent
// waiting for the adaptive limiter's send slot.
func Observe(obs retry.Observer) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("awsretry.Observe",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				st := &callObs{obs: obs, ctx: ctx}
				ctx = middleware.WithStackValue(ctx, callObsKey{}, st)
				out, md, err := next.HandleInitialize(ctx, in)
				st.end(md, err)
				return out, md, err
			}), middleware.After)
	}
}

type callObsKey struct{}

// callObs is one call's observation: the SDK runs a call's attempts one at
// a time, so it needs no lock.
type callObs struct {
	obs    retry.Observer
	ctx    context.Context // the call's, for the events
	seen   bool            // a Retryer of this package saw the call
	tries  int             // attempts started
	retry  bool            // a retry was granted and its attempt not yet started
	err    error           // the error that retry follows
	kind   retry.Kind
	at     time.Time // when the retry was granted
	waited time.Duration
	queued time.Duration
}

func observed(ctx context.Context) *callObs {
	st, _ := middleware.GetStackValue(ctx, callObsKey{}).(*callObs)
	return st
}

// retryGranted records, at GetRetryToken's success, the retry about to be
// slept.
func (st *callObs) retryGranted(now time.Time, err error, kind retry.Kind) {
	st.seen = true
	st.retry, st.err, st.kind, st.at = true, err, kind, now
}

// attemptStarting records, at GetAttemptToken, an attempt about to be
// sent: it reports the retry it is, with the time slept since the retry
// was granted, and adds the limiter's wait to Queued.
func (st *callObs) attemptStarting(now time.Time, queued time.Duration) {
	st.seen = true
	st.tries++
	st.queued += queued
	if !st.retry {
		return
	}
	st.retry = false
	delay := max(now.Add(-queued).Sub(st.at), 0)
	st.waited += delay
	e := retry.RetryEvent{Attempt: st.tries - 1, Err: st.err, Delay: delay, Throttled: st.kind == retry.KindThrottle, Kind: st.kind}
	if co, ok := st.obs.(retry.ContextObserver); ok {
		co.OnRetryContext(st.ctx, e)
	} else {
		st.obs.OnRetry(e)
	}
}

// end reports the call's success or give-up.
func (st *callObs) end(md middleware.Metadata, err error) {
	tries := st.tries
	if !st.seen {
		// Another Retryer: the SDK's record of the attempts.
		if res, ok := awsretry.GetAttemptResults(md); ok {
			tries = len(res.Results)
		}
	}
	if err == nil {
		if co, ok := st.obs.(retry.ContextObserver); ok {
			co.OnSuccessContext(st.ctx, retry.SuccessEvent{Attempts: tries, Waited: st.waited, Queued: st.queued})
		}
		return
	}
	e := &retry.Error{Reason: giveUpReason(st.ctx, err), Attempts: tries, Waited: st.waited, Queued: st.queued, Last: err}
	if co, ok := st.obs.(retry.ContextObserver); ok {
		co.OnGiveUpContext(st.ctx, e)
	} else {
		st.obs.OnGiveUp(e)
	}
}

// errSlotAfterDeadline is GetAttemptToken's refusal when the limiter's
// next slot is after the context's deadline.
var errSlotAfterDeadline = errors.New("awsretry: the adaptive limiter's next send slot is after the context deadline (client-side)")

// giveUpReason maps how the SDK's retry middleware ended a call to the
// core's reasons.
func giveUpReason(ctx context.Context, err error) retry.Reason {
	var maxErr *awsretry.MaxAttemptsError
	var canceled *aws.RequestCanceledError
	switch {
	case errors.Is(err, ErrQuotaExceeded):
		return retry.ReasonBudget
	case errors.As(err, &maxErr):
		return retry.ReasonMaxAttempts
	case errors.Is(err, errSlotAfterDeadline):
		return retry.ReasonDeadline
	case errors.As(err, &canceled), ctx.Err() != nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return retry.ReasonContext
	}
	return retry.ReasonNotRetryable
}
