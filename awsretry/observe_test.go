package awsretry_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	sdkretry "github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"

	"github.com/jittered/retry"
	"github.com/jittered/retry/awsretry"
	"github.com/jittered/retry/retrytest"
)

type obsKey struct{}

// calls records what an Observe option reported, and the context value
// each event carried.
type calls struct {
	retries []retry.RetryEvent
	success []retry.SuccessEvent
	gaveUp  []*retry.Error
	ctxVals []any
}

func (c *calls) OnRetry(retry.RetryEvent) {
	panic("OnRetry: a ContextObserver must get OnRetryContext")
}
func (c *calls) OnGiveUp(*retry.Error) { panic("OnGiveUp: a ContextObserver must get OnGiveUpContext") }
func (c *calls) OnRetryContext(ctx context.Context, e retry.RetryEvent) {
	c.retries = append(c.retries, e)
	c.ctxVals = append(c.ctxVals, ctx.Value(obsKey{}))
}
func (c *calls) OnGiveUpContext(ctx context.Context, e *retry.Error) {
	c.gaveUp = append(c.gaveUp, e)
	c.ctxVals = append(c.ctxVals, ctx.Value(obsKey{}))
}
func (c *calls) OnSuccessContext(ctx context.Context, e retry.SuccessEvent) {
	c.success = append(c.success, e)
	c.ctxVals = append(c.ctxVals, ctx.Value(obsKey{}))
}

const (
	throttleBody = `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}`
	serverBody   = `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"oops"}`
	invalidBody  = `{"__type":"com.amazon.coral.validate#ValidationException","message":"bad item"}`
)

// scripted is a DynamoDB client whose HTTP answers follow script (the last
// answer repeats), with the given Retryer and the Observe option.
func scripted(r aws.Retryer, obs retry.Observer, sent *atomic.Int64, script ...[2]any) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  aws.AnonymousCredentials{},
		BaseEndpoint: aws.String("http://ddb.local"),
		Retryer:      r,
		APIOptions:   []func(*middleware.Stack) error{awsretry.Observe(obs)},
		HTTPClient: clientFunc(func(req *http.Request) (*http.Response, error) {
			readAll(req)
			i := int(sent.Add(1)) - 1
			s := script[min(i, len(script)-1)]
			return jsonResp(req, s[0].(int), s[1].(string)), nil
		}),
	})
}

func TestObserveReportsRetriesAndSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &calls{}
		var sent atomic.Int64
		client := scripted(awsretry.Standard(), c, &sent, [2]any{400, throttleBody}, [2]any{500, serverBody}, [2]any{200, `{}`})
		ctx := context.WithValue(t.Context(), obsKey{}, "put-1")
		start := time.Now()
		if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("t"), Item: item("k")}); err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		if len(c.retries) != 2 || c.retries[0].Kind != retry.KindThrottle || !c.retries[0].Throttled || c.retries[1].Kind != retry.KindTransient {
			t.Fatalf("retries %+v, want a throttle then a transient error", c.retries)
		}
		if c.retries[0].Attempt != 1 || c.retries[1].Attempt != 2 {
			t.Errorf("retry attempts %d, %d; want 1, 2", c.retries[0].Attempt, c.retries[1].Attempt)
		}
		if len(c.success) != 1 || c.success[0].Attempts != 3 {
			t.Fatalf("successes %+v, want one of 3 attempts", c.success)
		}
		// The delays are the SDK's sleeps, in virtual time: they add up to
		// the call's whole duration (the scripted answers take no time).
		if got := c.retries[0].Delay + c.retries[1].Delay; got != c.success[0].Waited || got != elapsed || got <= 0 {
			t.Errorf("delays %v + %v, Waited %v, call took %v: want all equal and > 0",
				c.retries[0].Delay, c.retries[1].Delay, c.success[0].Waited, elapsed)
		}
		for i, v := range c.ctxVals {
			if v != "put-1" {
				t.Errorf("event %d had context value %v, want the call's", i, v)
			}
		}
	})
}

func TestObserveReportsGiveUps(t *testing.T) {
	put := func(client *dynamodb.Client) {
		_, _ = client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String("t"), Item: item("k")})
	}
	for _, tc := range []struct {
		name     string
		retryer  func() aws.Retryer
		answer   [2]any
		reason   retry.Reason
		attempts int
	}{
		{"max attempts", func() aws.Retryer { return awsretry.Standard() }, [2]any{500, serverBody}, retry.ReasonMaxAttempts, 3},
		{"not retryable", func() aws.Retryer { return awsretry.Standard() }, [2]any{400, invalidBody}, retry.ReasonNotRetryable, 1},
		{"budget", func() aws.Retryer {
			b, _ := retry.NewBudget(retry.BudgetConfig{Capacity: 0, RetryCost: 5})
			return awsretry.New(func(o *awsretry.Options) { o.Policy.Budget = b })
		}, [2]any{500, serverBody}, retry.ReasonBudget, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c := &calls{}
				var sent atomic.Int64
				put(scripted(tc.retryer(), c, &sent, tc.answer))
				if len(c.gaveUp) != 1 || c.gaveUp[0].Reason != tc.reason || c.gaveUp[0].Attempts != tc.attempts {
					t.Fatalf("give-ups %v, want one (%v) after %d attempts", c.gaveUp, tc.reason, tc.attempts)
				}
				if len(c.retries) != tc.attempts-1 || int(sent.Load()) != tc.attempts {
					t.Errorf("%d retries reported, %d attempts sent; want %d and %d", len(c.retries), sent.Load(), tc.attempts-1, tc.attempts)
				}
				if c.gaveUp[0].Last == nil {
					t.Error("give-up without the last error")
				}
			})
		})
	}
}

// TestObserveWithTheSDKsRetryer: another Retryer sees no retries, but
// successes and give-ups are reported with the attempts the SDK recorded.
func TestObserveWithTheSDKsRetryer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &calls{}
		var sent atomic.Int64
		client := scripted(sdkretry.NewStandard(), c, &sent, [2]any{400, throttleBody}, [2]any{200, `{}`})
		if _, err := client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String("t"), Item: item("k")}); err != nil {
			t.Fatal(err)
		}
		if len(c.success) != 1 || c.success[0].Attempts != 2 || len(c.retries) != 0 {
			t.Errorf("successes %+v, retries %+v: want one success of 2 attempts, no retry events", c.success, c.retries)
		}
	})
}

// TestObserveReportsTheLimitersQueue: calls held by a limiting limiter
// report the wait for their send slot as Queued, not as a delay.
func TestObserveReportsTheLimitersQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l, err := retry.NewAdaptiveLimiter(retry.LimiterConfig{MinRate: 10})
		if err != nil {
			t.Fatal(err)
		}
		l.Observe(retry.OutcomeThrottled) // limiting at the floor: 10/s
		r := awsretry.New(func(o *awsretry.Options) { o.Limiters, o.Policy.Limiter = nil, l })
		c := &calls{}
		var sent atomic.Int64
		client := scripted(r, c, &sent, [2]any{200, `{}`})
		for range 5 {
			if _, err := client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String("t"), Item: item("k")}); err != nil {
				t.Fatal(err)
			}
		}
		var queued time.Duration
		for _, s := range c.success {
			queued += s.Queued
			if s.Waited != 0 || s.Attempts != 1 {
				t.Errorf("success %+v: want 1 attempt, no delay", s)
			}
		}
		// Five sequential calls at 10/s: about 0.1 s each after the first.
		if len(c.success) != 5 || queued < 300*time.Millisecond || queued > 600*time.Millisecond {
			t.Errorf("%d successes, queued %v in all; want 5 and about 0.4 s", len(c.success), queued)
		}

		// A throttle, then success: the retry's sleep is its Delay, its
		// wait for a slot is Queued, and together they are the call.
		c = &calls{}
		sent.Store(0)
		client = scripted(r, c, &sent, [2]any{400, throttleBody}, [2]any{200, `{}`})
		start := time.Now()
		if _, err := client.PutItem(t.Context(), &dynamodb.PutItemInput{TableName: aws.String("t"), Item: item("k")}); err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(start)
		if len(c.success) != 1 || len(c.retries) != 1 {
			t.Fatalf("successes %+v, retries %+v", c.success, c.retries)
		}
		s := c.success[0]
		if s.Waited != c.retries[0].Delay || s.Waited+s.Queued != elapsed || s.Queued <= 0 {
			t.Errorf("delay %v, Waited %v + Queued %v, call took %v: want Waited = delay, Waited + Queued = the call, Queued > 0",
				c.retries[0].Delay, s.Waited, s.Queued, elapsed)
		}
	})
}

// safeCalls is calls behind a mutex, for concurrent calls.
type safeCalls struct {
	mu sync.Mutex
	calls
}

func (s *safeCalls) OnRetryContext(ctx context.Context, e retry.RetryEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.OnRetryContext(ctx, e)
}
func (s *safeCalls) OnGiveUpContext(ctx context.Context, e *retry.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.OnGiveUpContext(ctx, e)
}
func (s *safeCalls) OnSuccessContext(ctx context.Context, e retry.SuccessEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.OnSuccessContext(ctx, e)
}

// TestObserveOverRealHTTP: 200 PutItems from 8 goroutines through New()
// against the DynamoDB-shaped throttling service on loopback: the attempts
// reported add up to the requests the service counted, and the retries
// reported to the throttles it sent.
func TestObserveOverRealHTTP(t *testing.T) {
	srv := start(t, retrytest.Config{Rate: 400, Burst: 10, Shape: retrytest.DynamoDB})
	c := &safeCalls{}
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  aws.AnonymousCredentials{},
		BaseEndpoint: aws.String(srv.URL),
		Retryer:      awsretry.New(),
		APIOptions:   []func(*middleware.Stack) error{awsretry.Observe(c)},
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1); i <= 200 && ctx.Err() == nil; i = next.Add(1) {
				if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("t"), Item: item(strconv.Itoa(int(i)))}); err != nil {
					t.Errorf("PutItem %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	tot := srv.Counters().Total
	attempts := 0
	for _, s := range c.success {
		attempts += s.Attempts
	}
	if len(c.success) != 200 || attempts != tot.Accepted+tot.Throttled+tot.Faulted {
		t.Errorf("%d successes, %d attempts reported; the service counted %+v", len(c.success), attempts, tot)
	}
	if len(c.retries) != tot.Throttled+tot.Faulted || tot.Throttled == 0 {
		t.Errorf("%d retries reported, the service sent %d throttles and %d faults (want equal, and some throttles)", len(c.retries), tot.Throttled, tot.Faulted)
	}
}

// Observe reports each call to an Observer: here a log/slog one; an
// otelretry Observer turns the same events into OpenTelemetry metrics and
// span events. The service answers one throttle, then accepts.
func ExampleObserve() {
	srv, err := retrytest.Start(retrytest.Config{Rate: 1000, Burst: 10, Shape: retrytest.DynamoDB,
		Script: []retrytest.Fault{retrytest.FaultThrottle}})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	logs := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == "time" || a.Key == "delay" || a.Key == "error" {
				return slog.Attr{} // vary from run to run
			}
			return a
		}}))
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		Credentials:  aws.AnonymousCredentials{},
		BaseEndpoint: aws.String(srv.URL),
		Retryer:      awsretry.New(),
		APIOptions:   []func(*middleware.Stack) error{awsretry.Observe(retry.Slog{Logger: logs})},
	})
	_, err = client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: aws.String("t"), Item: item("k")})
	fmt.Println("PutItem:", err)
	// Output:
	// level=INFO msg=retrying attempt=1 throttled=true
	// PutItem: <nil>
}
