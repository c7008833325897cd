package awsretry_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/jittered/retry"
	"github.com/jittered/retry/awsretry"
)

func apiErr(code string) error { return &smithy.GenericAPIError{Code: code, Message: "m"} }

func httpErr(status int, err error) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader(""))}},
		Err:      err,
	}}
}

func opErr(err error) error {
	return &smithy.OperationError{ServiceID: "DynamoDB", OperationName: "PutItem", Err: err}
}

var classificationCases = []struct {
	name string
	err  error
}{
	{"throughput exceeded", opErr(httpErr(400, apiErr("ProvisionedThroughputExceededException")))},
	{"throttling", opErr(httpErr(400, apiErr("ThrottlingException")))},
	{"request limit", opErr(httpErr(400, apiErr("RequestLimitExceeded")))},
	{"slow down", opErr(httpErr(503, apiErr("SlowDown")))},
	{"transaction in progress", opErr(httpErr(400, apiErr("TransactionInProgressException")))},
	{"request timeout code", opErr(httpErr(400, apiErr("RequestTimeout")))},
	{"validation", opErr(httpErr(400, apiErr("ValidationException")))},
	{"conditional check", opErr(httpErr(400, apiErr("ConditionalCheckFailedException")))},
	{"access denied", opErr(httpErr(403, apiErr("AccessDeniedException")))},
	{"500", opErr(httpErr(500, apiErr("InternalServerError")))},
	{"502", opErr(httpErr(502, errors.New("bad gateway")))},
	{"503", opErr(httpErr(503, errors.New("unavailable")))},
	{"504", opErr(httpErr(504, errors.New("gateway timeout")))},
	{"429 unmodeled", opErr(httpErr(429, errors.New("too many requests")))},
	{"404", opErr(httpErr(404, errors.New("not found")))},
	{"connection reset", opErr(&smithyhttp.RequestSendError{Err: &net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}})},
	{"dial refused", opErr(&smithyhttp.RequestSendError{Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}})},
	{"canceled", opErr(&aws.RequestCanceledError{Err: context.Canceled})},
	{"plain error", errors.New("something")},
}

// TestClassificationMatchesSDK: every mode classifies as the SDK's standard
// retryer does (IsErrorRetryable) and its throttle checks (IsErrorThrottle).
func TestClassificationMatchesSDK(t *testing.T) {
	sdk := sdkretry.NewStandard()
	throttles := sdkretry.IsErrorThrottles(sdkretry.DefaultThrottles)
	for _, r := range []*awsretry.Retryer{awsretry.New(), awsretry.Standard(), awsretry.StandardDynamoDB(), awsretry.Adaptive()} {
		for _, c := range classificationCases {
			if got, want := r.IsErrorRetryable(c.err), sdk.IsErrorRetryable(c.err); got != want {
				t.Errorf("%s: IsErrorRetryable = %v, SDK says %v", c.name, got, want)
			}
			if got, want := r.IsErrorThrottle(c.err), throttles.IsErrorThrottle(c.err).Bool(); got != want {
				t.Errorf("%s: IsErrorThrottle = %v, SDK says %v", c.name, got, want)
			}
		}
	}
	// A Policy classifier is asked first.
	r := awsretry.New(func(o *awsretry.Options) {
		o.Policy.Classifier = retry.ClassifierFunc(func(err error) retry.Decision {
			var ae smithy.APIError
			if errors.As(err, &ae) && ae.ErrorCode() == "ValidationException" {
				return retry.Retry
			}
			return retry.Unknown
		})
	})
	if !r.IsErrorRetryable(classificationCases[6].err) {
		t.Error("the Policy's classifier was not asked first")
	}
}

// TestRetryDelayFormula pins the jitter factor to 1, as the AWS published
// vectors do: the delay after attempt n is min(20 s, base·2ⁿ⁻¹), base 25 ms
// (DynamoDB) or 1 s after a throttle. The SDK's own delays, unpinnable, all
// fall within the same bound and reach it.
func TestRetryDelayFormula(t *testing.T) {
	r := awsretry.StandardDynamoDB(func(o *awsretry.Options) { o.Policy.Rand = func() float64 { return 1 } })
	sdk := sdkretry.NewStandard(func(o *sdkretry.StandardOptions) { o.MaxAttempts = 4; o.BaseDelay = 25 * time.Millisecond })
	transient := opErr(httpErr(500, apiErr("InternalServerError")))
	throttle := opErr(httpErr(400, apiErr("ProvisionedThroughputExceededException")))
	for n := 1; n <= 12; n++ {
		for _, c := range []struct {
			err  error
			base time.Duration
		}{{transient, 25 * time.Millisecond}, {throttle, time.Second}} {
			want := min(20*time.Second, c.base<<(n-1))
			got, _ := r.RetryDelay(n, c.err)
			if d := want - got; d < 0 || d > time.Microsecond {
				t.Errorf("attempt %d (%v): delay %v, want %v", n, c.base, got, want)
			}
			var hi time.Duration
			for range 300 {
				s, err := sdk.RetryDelay(n, c.err)
				if err != nil || s < 0 || s > want {
					t.Fatalf("SDK attempt %d: %v %v outside [0, %v]", n, s, err, want)
				}
				hi = max(hi, s)
			}
			if hi < want*9/10 {
				t.Errorf("SDK attempt %d: max of 300 delays %v, expected near %v", n, hi, want)
			}
		}
	}
	if r.MaxAttempts() != 4 || awsretry.Standard().MaxAttempts() != 3 || awsretry.New().MaxAttempts() != 20 {
		t.Errorf("MaxAttempts: %d %d %d", r.MaxAttempts(), awsretry.Standard().MaxAttempts(), awsretry.New().MaxAttempts())
	}
}

func TestQuotaExhaustedIsClientSide(t *testing.T) {
	r := awsretry.Standard()
	transient := opErr(httpErr(500, apiErr("InternalServerError")))
	n := 0
	var err error
	for ; n < 100; n++ {
		if _, err = r.GetRetryToken(context.Background(), transient); err != nil {
			break
		}
	}
	if n != 35 { // 500 / 14
		t.Errorf("granted %d retries of 14 from 500 tokens, want 35", n)
	}
	if !errors.Is(err, retry.ErrBudgetExhausted) || !errors.Is(err, awsretry.ErrQuotaExceeded) || !strings.Contains(err.Error(), "client-side") {
		t.Errorf("err %v", err)
	}
	// Code written against the SDK finds its own error type, and the words.
	var q ratelimit.QuotaExceededError
	if !errors.As(err, &q) || q.Available != 10 || q.Requested != 14 || !strings.Contains(err.Error(), "retry quota exceeded, 10 available, 14 requested") {
		t.Errorf("errors.As(QuotaExceededError) = %+v for %v; want 10 available, 14 requested", q, err)
	}
}

func TestAttemptTokenHonorsDeadline(t *testing.T) {
	r := awsretry.New(func(o *awsretry.Options) {
		// CUBIC at its floor (0.5/s) after a throttle: the next slot is 2 s away.
		o.Policy.Limiter, _ = retry.NewAdaptiveLimiter(retry.AWSAdaptive)
		o.Limiters = nil // one limiter, the one above
	})
	l := r.Policy().Limiter
	l.(*retry.AdaptiveLimiter).Observe(retry.OutcomeThrottled)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := r.GetAttemptToken(ctx)
	if err == nil || !strings.Contains(err.Error(), "client-side") || time.Since(start) > 40*time.Millisecond {
		t.Errorf("err %v after %v: want an immediate client-side refusal", err, time.Since(start))
	}
}

func ExampleNew() {
	r := awsretry.New()
	// With a client: dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.Retryer = r })
	// Or for every client of a config: cfg.Retryer = func() aws.Retryer { return r }
	fmt.Println(r.MaxAttempts())
	// Output: 20
}
