// Package bench compares this module with the Go retry libraries users
// would otherwise pick, side by side, in the same run: a micro benchmark of
// the retry loop (micro_test.go) and a load benchmark against a throttled
// service (cmd/compare). It is its own module, so that the peers never
// enter the core's go.mod.
//
// Every adapter keeps its library's defaults except the base delay, the cap
// and the maximum number of attempts, which all share (Common); each says
// how it is configured in Config.
package bench

import (
	"context"
	"time"

	"github.com/avast/retry-go/v5"
	backoff "github.com/cenkalti/backoff/v5"
	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
	goretry "github.com/sethvargo/go-retry"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"

	ours "github.com/jittered/retry"
)

// Common is what every adapter shares.
type Common struct {
	Base, Cap time.Duration
	Attempts  int // in all, the first included
}

// Shared is the setting of the comparisons: base 25 ms, cap 1 s, 30 attempts.
var Shared = Common{Base: 25 * time.Millisecond, Cap: time.Second, Attempts: 30}

// Doer runs op with retries.
type Doer func(ctx context.Context, op func(context.Context) error) error

// Lib is one library under comparison.
type Lib struct {
	Name   string
	Config string
	// NewDoer builds the library's retry loop once (where the library lets
	// a configuration be reused) and returns how to run an op with it.
	NewDoer func(c Common) Doer
}

// Libs returns the libraries compared by the micro benchmark. (The HTTP
// library go-retryablehttp and the HTTP transport of this module are
// compared in micro_test.go on a fake transport.)
func Libs() []Lib {
	return []Lib{
		{"naive loop", "for i < attempts { op; sleep min(cap, base·2^i) } — the textbook loop, no jitter", func(c Common) Doer {
			return func(ctx context.Context, op func(context.Context) error) error {
				var err error
				for i := range c.Attempts {
					if err = op(ctx); err == nil {
						return nil
					}
					if i < c.Attempts-1 {
						d := min(c.Cap, c.Base<<min(i, 40))
						if d > 0 {
							time.Sleep(d)
						}
					}
				}
				return err
			}
		}},
		{"jittered/retry", "retry.Policy{MaxAttempts, Backoff: Exponential{Base, Cap}} (defaults: ×2, full jitter), built once", func(c Common) Doer {
			p := &ours.Policy{MaxAttempts: c.Attempts, Backoff: ours.Exponential{Base: max(c.Base, 1), Cap: max(c.Cap, 1)}}
			if c.Base == 0 {
				p.Backoff = ours.Constant{}
			}
			return p.Do
		}},
		{"cenkalti/backoff v5", "backoff.Retry with ExponentialBackOff{InitialInterval: Base, MaxInterval: Cap} (defaults: ×1.5, ±50 % jitter, 15 min max elapsed), WithMaxTries", func(c Common) Doer {
			return func(ctx context.Context, op func(context.Context) error) error {
				b := backoff.NewExponentialBackOff()
				b.InitialInterval, b.MaxInterval = c.Base, c.Cap
				_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, op(ctx) },
					backoff.WithBackOff(b), backoff.WithMaxTries(uint(c.Attempts)))
				return err
			}
		}},
		{"avast/retry-go v5", "retry.New(Attempts, Delay: Base, MaxDelay: Cap, Context) per call (defaults: backoff + random jitter up to 100 ms)", func(c Common) Doer {
			return func(ctx context.Context, op func(context.Context) error) error {
				opts := []retry.Option{retry.Attempts(uint(c.Attempts)), retry.Delay(c.Base), retry.MaxDelay(c.Cap), retry.Context(ctx)}
				if c.Base == 0 { // the zero-delay micro benchmark: no random jitter either
					opts = append(opts, retry.DelayType(retry.FixedDelay))
				}
				return retry.New(opts...).Do(func() error { return op(ctx) })
			}
		}},
		{"sethvargo/go-retry", "Exponential(Base) capped at Cap, WithMaxRetries(attempts−1), built per call (backoffs are stateful; default: no jitter); errors marked RetryableError", func(c Common) Doer {
			return func(ctx context.Context, op func(context.Context) error) error {
				b := goretry.WithMaxRetries(uint64(c.Attempts-1), goretry.WithCappedDuration(c.Cap, goretry.NewExponential(max(c.Base, 1))))
				return goretry.Do(ctx, b, func(ctx context.Context) error {
					if err := op(ctx); err != nil {
						return goretry.RetryableError(err)
					}
					return nil
				})
			}
		}},
		{"failsafe-go", "retrypolicy.NewBuilder().WithMaxAttempts.WithBackoff(Base, Cap) built once (defaults: ×2, no jitter); failsafe.With(p).WithContext(ctx).Run per call", func(c Common) Doer {
			b := retrypolicy.NewBuilder[any]().WithMaxAttempts(c.Attempts)
			if c.Base > 0 {
				b = b.WithBackoff(c.Base, c.Cap)
			}
			p := b.Build()
			return func(ctx context.Context, op func(context.Context) error) error {
				return failsafe.With[any](p).WithContext(ctx).Run(func() error { return op(ctx) })
			}
		}},
		{"aws-sdk-go-v2 standard", "aws/retry.NewStandard(MaxAttempts, BaseDelay: Base, MaxBackoff: Cap) (defaults: full jitter, 1 s base after throttles, 500-token quota), driven as the SDK's retry middleware drives it", func(c Common) Doer {
			r := awsretry.NewStandard(func(o *awsretry.StandardOptions) {
				o.MaxAttempts, o.BaseDelay, o.MaxBackoff = c.Attempts, max(c.Base, 1), max(c.Cap, 1)
				if c.Base == 0 { // the zero-delay micro benchmark: no delay, no quota (it drains by 28 tokens a call)
					o.Backoff = awsretry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
					o.RateLimiter = ratelimit.None
				}
			})
			return sdkLoop(r)
		}},
		{"aws-sdk-go-v2 adaptive", "aws/retry.NewAdaptiveMode over the same standard options (CUBIC client-side rate limiting)", func(c Common) Doer {
			r := awsretry.NewAdaptiveMode(func(o *awsretry.AdaptiveModeOptions) {
				o.StandardOptions = append(o.StandardOptions, func(o *awsretry.StandardOptions) {
					o.MaxAttempts, o.BaseDelay, o.MaxBackoff = c.Attempts, max(c.Base, 1), max(c.Cap, 1)
					if c.Base == 0 {
						o.Backoff = awsretry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
						o.RateLimiter = ratelimit.None
					}
				})
			})
			return sdkLoop(r)
		}},
	}
}

// sdkLoop drives an aws.RetryerV2 the way the SDK's retry middleware does
// (aws/retry/middleware.go): attempt token, attempt, release, retryable?,
// max attempts, retry token, delay, sleep.
func sdkLoop(r aws.RetryerV2) Doer {
	return func(ctx context.Context, op func(context.Context) error) error {
		releaseRetry := func(error) error { return nil }
		for attempt := 1; ; attempt++ {
			releaseAttempt, err := r.GetAttemptToken(ctx)
			if err != nil {
				return err
			}
			err = op(ctx)
			releaseRetry(err)
			releaseAttempt(err)
			if err == nil {
				return nil
			}
			if !r.IsErrorRetryable(err) {
				return err
			}
			if m := r.MaxAttempts(); m > 0 && attempt >= m {
				return err
			}
			if releaseRetry, err = r.GetRetryToken(ctx, err); err != nil {
				return err
			}
			d, derr := r.RetryDelay(attempt, err)
			if derr != nil {
				return derr
			}
			if d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
		}
	}
}

// errRetryable is what the micro benchmark's failing op returns; every
// library is told it is retryable (the AWS retryers via its Retryable
// method, which their classifiers honour).
var errRetryable error = retryableError{}

type retryableError struct{}

func (retryableError) Error() string        { return "transient" }
func (retryableError) RetryableError() bool { return true }
