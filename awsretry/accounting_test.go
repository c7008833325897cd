package awsretry_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/jittered/retry"
	"github.com/jittered/retry/awsretry"
)

var (
	aThrottle  = opErr(httpErr(400, apiErr("ThrottlingException")))
	aTransient = opErr(httpErr(500, apiErr("InternalServerError")))
	aInvalid   = opErr(httpErr(400, apiErr("ValidationException")))
)

// runOp drives r through the SDK's own retry middleware with the given
// attempt outcomes (nil: success), in virtual time.
func runOp(t *testing.T, r aws.RetryerV2, outcomes ...error) error {
	t.Helper()
	m := sdkretry.NewAttemptMiddleware(r, func(i any) any { return i })
	i := 0
	next := middleware.FinalizeHandlerFunc(func(ctx context.Context, in middleware.FinalizeInput) (middleware.FinalizeOutput, middleware.Metadata, error) {
		err := outcomes[min(i, len(outcomes)-1)]
		i++
		return middleware.FinalizeOutput{}, middleware.Metadata{}, err
	})
	_, _, err := m.HandleFinalize(t.Context(), middleware.FinalizeInput{
		Request: &smithyhttp.Request{Request: &http.Request{Header: http.Header{}}},
	}, next)
	return err
}

// The phantom token: with New (throttle retries free), ten operations of
// (throttle, then the retry succeeds) moved the budget from 486 to 496 — the
// first-try reward was paid for successful retries too.
func TestNoPhantomTokenAfterFreeThrottleRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := awsretry.New(func(o *awsretry.Options) { o.Limiters = nil; o.Policy.Limiter = nil })
		b := r.Policy().Budget
		if err := runOp(t, r, aTransient, nil); err != nil { // 500 → 486 → refunded: 500
			t.Fatal(err)
		}
		if err := runOp(t, r, aTransient, aTransient, aInvalid); err == nil { // consumed 14, refunded the last: 486
			t.Fatal("want the validation error")
		}
		if got := b.Tokens(); got != 486 {
			t.Fatalf("tokens %v, want 486 before the throttles", got)
		}
		for range 10 {
			if err := runOp(t, r, aThrottle, nil); err != nil {
				t.Fatal(err)
			}
		}
		if got := b.Tokens(); got != 486 {
			t.Errorf("tokens after 10 × (throttle, successful free retry) = %v, want 486 (no reward for a retry)", got)
		}
		for range 3 {
			if err := runOp(t, r, nil); err != nil {
				t.Fatal(err)
			}
		}
		if got := b.Tokens(); got != 489 {
			t.Errorf("tokens after 3 first-try successes = %v, want 489", got)
		}
	})
}

// A budget with a per-call deposit (a retry ratio) gets its deposit: the
// Retryer used never to call StartAt, so a RatioBudget refused retries.
func TestRatioBudgetGetsItsDeposits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := retry.NewBudget(retry.RatioBudget(0.5, 1))
		if err != nil {
			t.Fatal(err)
		}
		r := awsretry.Standard(func(o *awsretry.Options) { o.Policy.Budget = b; o.Policy.MaxAttempts = 2 })
		granted := 0
		for range 100 {
			if err := runOp(t, r, aTransient, nil); err == nil {
				granted++
			}
		}
		// retry.Do grants 51 of these 100 with the same budget (1 of burst,
		// then one per two calls).
		if granted < 50 {
			t.Errorf("%d of 100 single-failure calls retried with a 0.5 retry ratio, want about 51", granted)
		}
	})
}

// New keys its limiter per operation and resource: one table throttling at
// a low rate does not slow writes to another table.
func TestNewKeysLimiterPerResource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var hotSent, coldSent atomic.Int64
		var mu sync.Mutex
		hotTokens, last := 20.0, time.Now() // the hot table: 200 writes/s
		client := dynamodb.New(dynamodb.Options{
			Region:       "us-east-1",
			Credentials:  aws.AnonymousCredentials{},
			BaseEndpoint: aws.String("http://ddb.local"),
			Retryer:      awsretry.New(),
			APIOptions:   []func(*middleware.Stack) error{awsretry.KeyByResource},
			HTTPClient: clientFunc(func(req *http.Request) (*http.Response, error) {
				body := readAll(req)
				if strings.Contains(body, `"hot"`) {
					hotSent.Add(1)
					mu.Lock()
					now := time.Now()
					hotTokens = min(20, hotTokens+now.Sub(last).Seconds()*200)
					last = now
					ok := hotTokens >= 1
					if ok {
						hotTokens--
					}
					mu.Unlock()
					if !ok {
						return jsonResp(req, 400, `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}`), nil
					}
				} else {
					coldSent.Add(1)
				}
				return jsonResp(req, 200, `{}`), nil
			}),
		})
		put := func(table string) error {
			_, err := client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String(table), Item: item("k")})
			return err
		}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		for range 20 { // 20 writers on the hot table, each as fast as it may
			wg.Go(func() {
				for ctx.Err() == nil {
					_ = put("hot")
					time.Sleep(time.Millisecond)
				}
			})
		}
		time.Sleep(time.Second) // the hot table's limiter has learned 200/s
		start := time.Now()
		var coldLatency []time.Duration
		for range 50 {
			t0 := time.Now()
			if err := put("cold"); err != nil {
				t.Fatal(err)
			}
			coldLatency = append(coldLatency, time.Since(t0))
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		wg.Wait()
		var worst time.Duration
		for _, d := range coldLatency {
			worst = max(worst, d)
		}
		if worst > 5*time.Millisecond {
			t.Errorf("a write to the cold table waited up to %v while the hot one throttled (want no wait: its own limiter is calm); run took %v", worst, time.Since(start))
		}
		if hotSent.Load() == 0 || coldSent.Load() != 50 {
			t.Errorf("hot %d, cold %d attempts", hotSent.Load(), coldSent.Load())
		}
	})
}

// Three goroutines share one New() Retryer; the first answer is a throttle
// and every later one succeeds: the send rate must reach what the service
// gives (here the clients' own pace), not lock at a fraction of it.
func TestNewRecoversFromAThrottleAtTheStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sent atomic.Int64
		var first atomic.Bool
		client := dynamodb.New(dynamodb.Options{
			Region:       "us-east-1",
			Credentials:  aws.AnonymousCredentials{},
			BaseEndpoint: aws.String("http://ddb.local"),
			Retryer:      awsretry.New(),
			HTTPClient: clientFunc(func(req *http.Request) (*http.Response, error) {
				readAll(req)
				sent.Add(1)
				time.Sleep(time.Millisecond) // 1 ms of service time: 1000/s per goroutine
				if first.CompareAndSwap(false, true) {
					return jsonResp(req, 400, `{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"slow down"}`), nil
				}
				return jsonResp(req, 200, `{}`), nil
			}),
		})
		ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
		defer cancel()
		var okCount [5]atomic.Int64 // per second
		start := time.Now()
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() {
				for ctx.Err() == nil {
					_, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("t"), Item: item("k")})
					if err == nil {
						okCount[int(time.Since(start)/time.Second)].Add(1)
					}
				}
			})
		}
		wg.Wait()
		// 3 goroutines at 1 ms per call: 3000/s when nothing holds them back.
		if got := okCount[3].Load(); got < 2700 {
			t.Errorf("writes in the 4th second: %d, want ≥ 2700 of the 3000/s the clients can send (per second: %d %d %d %d)",
				got, okCount[0].Load(), okCount[1].Load(), okCount[2].Load(), okCount[3].Load())
		}
	})
}

type clientFunc func(*http.Request) (*http.Response, error)

func (f clientFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

func readAll(r *http.Request) string {
	if r.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(r.Body)
	r.Body.Close()
	return string(b)
}

func jsonResp(req *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status, Status: http.StatusText(status), Request: req,
		Header: http.Header{"Content-Type": []string{"application/x-amz-json-1.0"}},
		Body:   io.NopCloser(strings.NewReader(body)), ContentLength: int64(len(body)),
	}
}

func item(k string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: k}}
}
