package awsretry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	sdkretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/jittered/retry"
	"github.com/jittered/retry/awsretry"
)

// The AWS SDK for Go v2's retry-2026 behaviour, as published with
// aws-sdk-go-v2 v1.48.0 (aws/retry/retry2026_test.go, the SEP's test
// vectors), restated here as this project's own data: every response of
// every case, the outcome the retryer must reach, the retry quota after it,
// and the exact delay before the next attempt.

type outcome int

const (
	success    outcome = iota // the attempt succeeded
	retryReq                  // retried after delay
	maxReached                // retryable, but no attempts left
	quotaOut                  // retryable, but the retry quota refuses
	failReq                   // not retryable
)

// errKind is how the response's error reaches the retryer.
type errKind int

const (
	plain   errKind = iota // *smithyhttp.ResponseError, no code
	coded                  // an API error carrying Code (not modeled)
	generic                // *smithy.GenericAPIError inside the response error
	modeled                // a modeled error type of the service
)

type vResp struct {
	status    int
	code      string
	kind      errKind
	headers   map[string]string
	retryable *bool // the error says RetryableError() = *retryable
}

type vStep struct {
	resp  vResp
	want  outcome
	quota int           // -1: not checked
	delay time.Duration // for retryReq (and long-polling quotaOut)
}

type vector struct {
	name        string
	maxAttempts int // 0: the preset's
	tokens      int // initial quota; 0 means 500 unless zeroTokens
	zeroTokens  bool
	maxBackoff  time.Duration // 0: 20 s
	dynamoDB    bool
	longPolling bool
	pinRand     bool // the SDK's vectors pin the jitter's random number to 1
	steps       []vStep
}

var (
	r500       = vResp{status: 500}
	r502       = vResp{status: 502}
	r200       = vResp{status: 200}
	throttling = vResp{status: 400, code: "Throttling", kind: coded}
	no         = false
)

func st(resp vResp, want outcome, quota int, delay time.Duration) vStep {
	return vStep{resp: resp, want: want, quota: quota, delay: delay}
}

const ms = time.Millisecond

var vectors = []vector{
	{name: "retry eventually succeeds", pinRand: true, steps: []vStep{
		st(r500, retryReq, 486, 50*ms), st(r500, retryReq, 472, 100*ms), st(r200, success, 486, 0)}},
	{name: "fail due to max attempts reached", pinRand: true, steps: []vStep{
		st(r502, retryReq, 486, 50*ms), st(r502, retryReq, 472, 100*ms), st(r502, maxReached, 472, 0)}},
	{name: "retry quota reached after a single retry", tokens: 14, pinRand: true, steps: []vStep{
		st(r500, retryReq, 0, 50*ms), st(r500, quotaOut, 0, 0)}},
	{name: "no retries at all if retry quota is 0", zeroTokens: true, pinRand: true, steps: []vStep{
		st(r500, quotaOut, 0, 0)}},
	{name: "verifying exponential backoff timing", maxAttempts: 5, pinRand: true, steps: []vStep{
		st(r500, retryReq, 486, 50*ms), st(r500, retryReq, 472, 100*ms), st(r500, retryReq, 458, 200*ms),
		st(r500, retryReq, 444, 400*ms), st(r500, maxReached, 444, 0)}},
	{name: "verify max backoff time", maxAttempts: 5, maxBackoff: 200 * ms, pinRand: true, steps: []vStep{
		st(r500, retryReq, 486, 50*ms), st(r500, retryReq, 472, 100*ms), st(r500, retryReq, 458, 200*ms),
		st(r500, retryReq, 444, 200*ms), st(r500, maxReached, 444, 0)}},
	{name: "retry stops after retry quota exhaustion", maxAttempts: 5, tokens: 20, pinRand: true, steps: []vStep{
		st(r500, retryReq, 6, 50*ms), st(r502, quotaOut, 6, 0)}},
	{name: "retry quota recovery after successful responses", maxAttempts: 5, tokens: 30, pinRand: true, steps: []vStep{
		st(r500, retryReq, 16, 50*ms), st(r502, retryReq, 2, 100*ms), st(r200, success, 16, 0),
		st(r500, retryReq, 2, 50*ms), st(r200, success, 16, 0)}},
	{name: "throttling error token bucket drain and backoff duration", pinRand: true, steps: []vStep{
		st(throttling, retryReq, 495, time.Second), st(r200, success, 500, 0)}},
	{name: "429 without error code is a throttling error", pinRand: true, steps: []vStep{
		st(vResp{status: 429}, retryReq, 495, time.Second), st(r200, success, 500, 0)}},
	{name: "429 with unknown error code is a throttling error", pinRand: true, steps: []vStep{
		st(vResp{status: 429, code: "SomeUnmodeledError", kind: coded}, retryReq, 495, time.Second), st(r200, success, 500, 0)}},
	{name: "429 with generic API error is a throttling error", pinRand: true, steps: []vStep{
		st(vResp{status: 429, code: "SomeUnmodeledError", kind: generic}, retryReq, 495, time.Second), st(r200, success, 500, 0)}},
	{name: "429 with modeled error that is not retryable is not retried", pinRand: true, steps: []vStep{
		st(vResp{status: 429, code: "ConcurrentResourcesLimitExceededException", kind: modeled}, failReq, 500, 0)}},
	{name: "429 with modeled throttling error is a throttling error", pinRand: true, steps: []vStep{
		st(vResp{status: 429, code: "ThrottlingException", kind: modeled}, retryReq, 495, time.Second), st(r200, success, 500, 0)}},
	{name: "429 explicitly not retryable is not retried", pinRand: true, steps: []vStep{
		st(vResp{status: 429, retryable: &no}, failReq, 500, 0)}},
	{name: "dynamodb base backoff and increased retries", dynamoDB: true, pinRand: true, steps: []vStep{
		st(r500, retryReq, 486, 25*ms), st(r500, retryReq, 472, 50*ms), st(r500, retryReq, 458, 100*ms),
		st(r500, maxReached, 458, 0)}},
	{name: "long-polling backoff when token bucket empty", longPolling: true, zeroTokens: true, pinRand: true, steps: []vStep{
		st(r500, quotaOut, 0, 50*ms)}},
	{name: "long-polling backoff after throttling error when token bucket empty", longPolling: true, zeroTokens: true, pinRand: true, steps: []vStep{
		st(throttling, quotaOut, 0, time.Second)}},
	{name: "long-polling max attempts exceeded must not delay", longPolling: true, maxAttempts: 2, pinRand: true, steps: []vStep{
		st(r500, retryReq, 486, 50*ms), st(r500, maxReached, 486, 0)}},
	{name: "long-polling success must not delay", longPolling: true, maxAttempts: 2, pinRand: true, steps: []vStep{
		st(r500, retryReq, 486, 50*ms), st(r200, success, 500, 0)}},
	{name: "long-polling non-retriable errors must not delay", longPolling: true, maxAttempts: 2, pinRand: true, steps: []vStep{
		st(vResp{status: 404}, failReq, -1, 0)}},
	{name: "honor x-amz-retry-after header", steps: []vStep{
		st(vResp{status: 500, headers: map[string]string{"x-amz-retry-after": "1500"}}, retryReq, 486, 1500*ms), st(r200, success, 500, 0)}},
	{name: "x-amz-retry-after minimum is exponential backoff duration", pinRand: true, steps: []vStep{
		st(vResp{status: 500, headers: map[string]string{"x-amz-retry-after": "0"}}, retryReq, 486, 50*ms), st(r200, success, 500, 0)}},
	{name: "x-amz-retry-after maximum is 5+exponential backoff duration", pinRand: true, steps: []vStep{
		st(vResp{status: 500, headers: map[string]string{"x-amz-retry-after": "10000"}}, retryReq, 486, 5050*ms), st(r200, success, 500, 0)}},
	{name: "invalid x-amz-retry-after falls back to exponential backoff", pinRand: true, steps: []vStep{
		st(vResp{status: 500, headers: map[string]string{"x-amz-retry-after": "invalid"}}, retryReq, 486, 50*ms), st(r200, success, 500, 0)}},
}

// codedErr is an API error with a code that no service models.
type codedErr struct {
	*smithyhttp.ResponseError
	code string
}

func (e *codedErr) ErrorCode() string    { return e.code }
func (e *codedErr) ErrorMessage() string { return e.code }
func (e *codedErr) ErrorFault() int      { return 0 }
func (e *codedErr) Error() string        { return e.code + ": " + e.ResponseError.Error() }
func (e *codedErr) Unwrap() error        { return e.ResponseError }

// modeledErr stands for a service's modeled error type.
type modeledErr struct{ code string }

func (e *modeledErr) ErrorCode() string             { return e.code }
func (e *modeledErr) ErrorMessage() string          { return e.code }
func (e *modeledErr) ErrorFault() smithy.ErrorFault { return smithy.FaultClient }
func (e *modeledErr) Error() string                 { return e.code + ": modeled" }

type explicitRetryable struct {
	err       error
	retryable bool
}

func (e *explicitRetryable) RetryableError() bool { return e.retryable }
func (e *explicitRetryable) Error() string        { return e.err.Error() }
func (e *explicitRetryable) Unwrap() error        { return e.err }

// vErr builds the error an SDK client's deserializer would return for r
// (nil for a 2xx).
func vErr(r vResp) error {
	if r.status < 300 {
		return nil
	}
	hr := &http.Response{StatusCode: r.status, Header: http.Header{}, Body: io.NopCloser(bytes.NewReader(nil))}
	for k, v := range r.headers {
		hr.Header.Set(k, v)
	}
	re := &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: hr}}
	var err error = re
	switch r.kind {
	case coded:
		err = &codedErr{ResponseError: re, code: r.code}
	case generic:
		re.Err = &smithy.GenericAPIError{Code: r.code, Message: r.code}
	case modeled:
		re.Err = &modeledErr{code: r.code}
	}
	if r.retryable != nil {
		err = &explicitRetryable{err: err, retryable: *r.retryable}
	}
	return err
}

// newVectorRetryer builds the preset under test with the vector's settings.
func newVectorRetryer(v vector, preset func(...func(*awsretry.Options)) *awsretry.Retryer) (aws.RetryerV2, *retry.Budget) {
	tokens := 500.0
	if v.tokens > 0 || v.zeroTokens {
		tokens = float64(v.tokens)
	}
	cfg := retry.AWSStandardBudget
	cfg.Capacity = tokens
	b, err := retry.NewBudget(cfg)
	if err != nil {
		panic(err)
	}
	r := preset(func(o *awsretry.Options) {
		o.Policy.Budget = b
		if v.maxAttempts > 0 {
			o.Policy.MaxAttempts = v.maxAttempts
		}
		if v.maxBackoff > 0 {
			e := o.Policy.Backoff.(retry.Exponential)
			e.Cap = v.maxBackoff
			o.Policy.Backoff = e
			te := o.Policy.ThrottleBackoff.(retry.Exponential)
			te.Cap = v.maxBackoff
			o.Policy.ThrottleBackoff = te
		}
		if v.pinRand {
			o.Policy.Rand = func() float64 { return 1 }
		}
	})
	var rr aws.RetryerV2 = r
	if v.longPolling {
		rr = sdkretry.AddWithLongPolling(r).(aws.RetryerV2)
	}
	return rr, b
}

// amzRetryAfter restates the SDK's x-amz-retry-after rule: a valid header
// in milliseconds bounds the delay to [backoff, backoff + 5 s].
func amzRetryAfter(backoff time.Duration, err error) time.Duration {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil {
		return backoff
	}
	var n int64
	if _, perr := fmt.Sscanf(re.Response.Header.Get("X-Amz-Retry-After"), "%d", &n); perr != nil || n < 0 {
		return backoff
	}
	return min(max(time.Duration(n)*time.Millisecond, backoff), backoff+5*time.Second)
}

func presetsFor(v vector) map[string]func(...func(*awsretry.Options)) *awsretry.Retryer {
	if v.dynamoDB {
		return map[string]func(...func(*awsretry.Options)) *awsretry.Retryer{
			"StandardDynamoDB": awsretry.StandardDynamoDB, "AdaptiveDynamoDB": awsretry.AdaptiveDynamoDB}
	}
	return map[string]func(...func(*awsretry.Options)) *awsretry.Retryer{
		"Standard": awsretry.Standard, "Adaptive": awsretry.Adaptive}
}

// TestVectorsDirect calls the aws.RetryerV2 methods as the SDK's retry
// middleware does, in its order (attempt token; the previous retry token's
// release; the attempt token's release; then IsErrorRetryable, MaxAttempts,
// GetRetryToken, RetryDelay), for the parity presets. Adaptive behaves as
// Standard in every vector: none throttles more than once, and the CUBIC
// limiter's waits do not change quotas or computed delays (they are virtual
// time here).
func TestVectorsDirect(t *testing.T) {
	for _, v := range vectors {
		for name, preset := range presetsFor(v) {
			t.Run(name+"/"+v.name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					r, b := newVectorRetryer(v, preset)
					ctx := t.Context()
					attempt := 0
					releaseRetry := func(error) error { return nil }
					for i, s := range v.steps {
						attempt++
						releaseAttempt, err := r.GetAttemptToken(ctx)
						if err != nil {
							t.Fatalf("step %d: GetAttemptToken: %v", i, err)
						}
						opErr := vErr(s.resp)
						releaseRetry(opErr)
						releaseRetry = func(error) error { return nil }
						releaseAttempt(opErr)
						switch s.want {
						case success:
							if opErr != nil {
								t.Fatalf("step %d: the vector's response is an error", i)
							}
							attempt = 0
						case retryReq:
							if !r.IsErrorRetryable(opErr) || attempt >= r.MaxAttempts() {
								t.Fatalf("step %d: not retried (retryable %v, attempt %d of %d)", i, r.IsErrorRetryable(opErr), attempt, r.MaxAttempts())
							}
							releaseRetry, err = r.GetRetryToken(ctx, opErr)
							if err != nil {
								t.Fatalf("step %d: GetRetryToken: %v", i, err)
							}
							d, err := r.RetryDelay(attempt, opErr)
							if err != nil {
								t.Fatal(err)
							}
							if got := amzRetryAfter(d, opErr); got != s.delay {
								t.Errorf("step %d: delay %v, want %v", i, got, s.delay)
							}
						case maxReached:
							if !r.IsErrorRetryable(opErr) || attempt < r.MaxAttempts() {
								t.Errorf("step %d: want retryable at the last attempt (retryable %v, attempt %d of %d)", i, r.IsErrorRetryable(opErr), attempt, r.MaxAttempts())
							}
						case quotaOut:
							if !r.IsErrorRetryable(opErr) {
								t.Fatalf("step %d: want retryable", i)
							}
							_, err := r.GetRetryToken(ctx, opErr)
							var q ratelimit.QuotaExceededError
							if !errors.As(err, &q) || !errors.Is(err, awsretry.ErrQuotaExceeded) {
								t.Errorf("step %d: GetRetryToken err %v, want the SDK's QuotaExceededError and ErrQuotaExceeded", i, err)
							}
							if v.longPolling && s.delay > 0 {
								d, _ := r.RetryDelay(attempt, opErr)
								if got := amzRetryAfter(d, opErr); got != s.delay {
									t.Errorf("step %d: long-polling delay %v, want %v", i, got, s.delay)
								}
							}
						case failReq:
							if r.IsErrorRetryable(opErr) {
								t.Errorf("step %d: want not retryable", i)
							}
						}
						if s.quota >= 0 {
							if got := b.Tokens(); got != float64(s.quota) {
								t.Errorf("step %d: quota %v, want %d", i, got, s.quota)
							}
						}
					}
				})
			})
		}
	}
}

// TestVectorsThroughSDKMiddleware runs each vector's operations through the
// SDK's own retry middleware (aws/retry.NewAttemptMiddleware) with the
// presets Standard and StandardDynamoDB, in a synctest bubble, so that the
// middleware's real sleeps (sdk.SleepWithContext) are measured exactly in
// virtual time, x-amz-retry-after applied by the SDK itself. The
// long-polling vectors are left to TestVectorsDirect: the middleware learns
// that an operation long-polls from a context key internal to the SDK,
// which only generated SQS clients set.
func TestVectorsThroughSDKMiddleware(t *testing.T) {
	for _, v := range vectors {
		if v.longPolling {
			continue
		}
		preset := awsretry.Standard
		if v.dynamoDB {
			preset = awsretry.StandardDynamoDB
		}
		t.Run(v.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r, b := newVectorRetryer(v, preset)
				m := sdkretry.NewAttemptMiddleware(r, func(i any) any { return i })
				steps := v.steps
				for op := 0; len(steps) > 0; op++ {
					// One operation: the steps up to its success or its end.
					n := 0
					for n < len(steps) && steps[n].want == retryReq {
						n++
					}
					n = min(n+1, len(steps))
					opSteps := steps[:n]
					steps = steps[n:]
					var at []time.Time
					next := middleware.FinalizeHandlerFunc(func(ctx context.Context, in middleware.FinalizeInput) (middleware.FinalizeOutput, middleware.Metadata, error) {
						i := len(at)
						at = append(at, time.Now())
						if i >= len(opSteps) {
							t.Fatalf("operation %d: attempt %d beyond the vector's %d", op, i+1, len(opSteps))
						}
						return middleware.FinalizeOutput{}, middleware.Metadata{}, vErr(opSteps[i].resp)
					})
					_, _, err := m.HandleFinalize(t.Context(), middleware.FinalizeInput{
						Request: &smithyhttp.Request{Request: &http.Request{Header: http.Header{}}},
					}, next)
					if len(at) != len(opSteps) {
						t.Fatalf("operation %d: %d attempts, want %d (err %v)", op, len(at), len(opSteps), err)
					}
					for i := 1; i < len(at); i++ {
						if got, want := at[i].Sub(at[i-1]), opSteps[i-1].delay; got != want {
							t.Errorf("operation %d: sleep before attempt %d = %v, want %v", op, i+1, got, want)
						}
					}
					last := opSteps[len(opSteps)-1]
					var maxErr *sdkretry.MaxAttemptsError
					var q ratelimit.QuotaExceededError
					switch last.want {
					case success:
						if err != nil {
							t.Errorf("operation %d: err %v, want success", op, err)
						}
					case maxReached:
						if !errors.As(err, &maxErr) {
							t.Errorf("operation %d: err %v, want MaxAttemptsError", op, err)
						}
					case quotaOut:
						if !errors.As(err, &q) || !errors.Is(err, awsretry.ErrQuotaExceeded) {
							t.Errorf("operation %d: err %v, want the SDK's QuotaExceededError", op, err)
						}
					case failReq:
						if err == nil || errors.As(err, &maxErr) || errors.As(err, &q) {
							t.Errorf("operation %d: err %v, want the response's own error", op, err)
						}
					}
					if last.quota >= 0 {
						if got := b.Tokens(); got != float64(last.quota) {
							t.Errorf("operation %d: quota %v, want %d", op, got, last.quota)
						}
					}
				}
			})
		})
	}
}
