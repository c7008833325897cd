package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/jittered/retry/httpretry"
	"github.com/jittered/retry/internal/sim"
	"github.com/jittered/retry/retrytest"
)

// Writer writes item i, with retries, and reports an error if it gave up.
type Writer func(ctx context.Context, i int) error

// Target is one library under the load benchmark.
type Target struct {
	Name, Config string
	// New builds a writer sending through base to url.
	New func(base http.RoundTripper, url string, c Common) Writer
}

func itemBody(i int) []byte {
	return fmt.Appendf(nil, `{"TableName":"items","Item":{"pk":{"S":"item-%06d"},"n":{"N":"%d"}}}`, i, i)
}

// errStatus is a non-200 answer, returned to generic libraries as a
// (retryable) error.
type errStatus struct{ code int }

func (e errStatus) Error() string        { return fmt.Sprintf("HTTP %d", e.code) }
func (e errStatus) RetryableError() bool { return true }

func put(ctx context.Context, c *http.Client, url string, i int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(itemBody(i)))
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errStatus{resp.StatusCode}
	}
	return nil
}

// doerTarget wraps a generic library: every non-200 answer is an error it
// retries (these libraries retry all errors by default).
func doerTarget(l Lib) Target {
	return Target{Name: l.Name, Config: l.Config, New: func(base http.RoundTripper, url string, c Common) Writer {
		do := l.NewDoer(c)
		client := &http.Client{Transport: base}
		return func(ctx context.Context, i int) error {
			return do(ctx, func(ctx context.Context) error { return put(ctx, client, url, i) })
		}
	}}
}

// Targets returns every library of the load benchmark.
func Targets() []Target {
	var ts []Target
	for _, l := range Libs() {
		if l.Name == "jittered/retry" || l.Name == "aws-sdk-go-v2 standard" || l.Name == "aws-sdk-go-v2 adaptive" {
			continue
		}
		ts = append(ts, doerTarget(l))
	}
	ts = append(ts,
		Target{"hashicorp/go-retryablehttp", "retryablehttp.Client{RetryWaitMin: Base, RetryWaitMax: Cap, RetryMax: attempts−1} (defaults: DefaultBackoff ×2 honouring Retry-After, DefaultRetryPolicy); CheckRetry also retries DynamoDB throttles (a 400 it would not retry otherwise)", func(base http.RoundTripper, url string, c Common) Writer {
			rc := retryablehttp.NewClient()
			rc.HTTPClient = &http.Client{Transport: base}
			rc.Logger = nil
			rc.RetryWaitMin, rc.RetryWaitMax, rc.RetryMax = c.Base, c.Cap, c.Attempts-1
			rc.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) {
				if resp != nil && httpretry.AWSThrottle(resp) == 2 { // retry.Throttled
					return true, nil
				}
				return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
			}
			return func(ctx context.Context, i int) error {
				req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPut, url, itemBody(i))
				if err != nil {
					return err
				}
				resp, err := rc.Do(req)
				if err != nil {
					return err
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					return errStatus{resp.StatusCode}
				}
				return nil
			}
		}},
		sdkTarget("aws-sdk-go-v2 standard", false),
		sdkTarget("aws-sdk-go-v2 adaptive", true),
		Target{"jittered/retry", "httpretry.Transport with the recommended Policy (internal/sim.Recommended: Goodput limiter, full jitter over Base..Cap, throttle backoff capped at 100 ms) and httpretry.AWSThrottle", func(base http.RoundTripper, url string, c Common) Writer {
			p := sim.Recommended(1)
			p.MaxAttempts = c.Attempts
			client := &http.Client{Transport: &httpretry.Transport{Next: base, Policy: p, Classify: httpretry.AWSThrottle}}
			return func(ctx context.Context, i int) error { return put(ctx, client, url, i) }
		}},
	)
	return ts
}

// sdkTarget uses a real DynamoDB client (PutItem) with the SDK's own retry
// mode, configured with the shared base, cap and attempts.
func sdkTarget(name string, adaptive bool) Target {
	cfg := "dynamodb.Client PutItem with aws/retry.NewStandard(MaxAttempts, BaseDelay: Base, MaxBackoff: Cap) (defaults: full jitter, 1 s base after throttles, 500-token quota at 14 or 5 a retry)"
	if adaptive {
		cfg = "as standard, inside aws/retry.NewAdaptiveMode (CUBIC client-side rate limiting)"
	}
	return Target{name, cfg, func(base http.RoundTripper, url string, c Common) Writer {
		std := func(o *awsretry.StandardOptions) {
			o.MaxAttempts, o.BaseDelay, o.MaxBackoff = c.Attempts, c.Base, c.Cap
		}
		var r aws.Retryer = awsretry.NewStandard(std)
		if adaptive {
			r = awsretry.NewAdaptiveMode(func(o *awsretry.AdaptiveModeOptions) { o.StandardOptions = append(o.StandardOptions, std) })
		}
		client := dynamodb.New(dynamodb.Options{
			Region:       "us-east-1",
			Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "SECRETTEST", ""),
			BaseEndpoint: aws.String(url),
			HTTPClient:   &http.Client{Transport: base},
			Retryer:      r,
		})
		return func(ctx context.Context, i int) error {
			_, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("items"), Item: map[string]types.AttributeValue{
				"pk": &types.AttributeValueMemberS{Value: fmt.Sprintf("item-%06d", i)},
				"n":  &types.AttributeValueMemberN{Value: fmt.Sprint(i)},
			}})
			return err
		}
	}}
}

// RunLoad has clients writers write items items through t to url, each one
// at a time (retrytest.RunLoad), and stops by itself after timeout.
func RunLoad(ctx context.Context, t Target, url string, clients, items int, c Common, timeout time.Duration) (retrytest.LoadResult, error) {
	return retrytest.RunLoad(ctx, retrytest.LoadConfig{
		URL: url, Clients: clients, Items: items, Timeout: timeout,
		NewWriter: func(base http.RoundTripper) func(context.Context, int) error {
			return t.New(base, url, c)
		},
	})
}
