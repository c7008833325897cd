package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jittered/retry"
)

func ExamplePolicy_Do() {
	p := &retry.Policy{MaxAttempts: 4, Backoff: retry.Exponential{Base: time.Millisecond}}
	calls := 0
	err := p.Do(context.Background(), func(ctx context.Context) error {
		calls++
		if calls < 3 {
			return errors.New("connection reset")
		}
		return nil
	})
	fmt.Println(calls, err)
	// Output: 3 <nil>
}

func ExampleDoValue() {
	p := &retry.Policy{Backoff: retry.Constant{Interval: time.Millisecond}}
	calls := 0
	v, err := retry.DoValue(context.Background(), p, func(ctx context.Context) (int, error) {
		calls++
		if calls == 1 {
			return 0, errors.New("503 Service Unavailable")
		}
		return 42, nil
	})
	fmt.Println(v, err)
	// Output: 42 <nil>
}

func ExamplePermanent() {
	p := &retry.Policy{MaxAttempts: 5, Backoff: retry.Constant{}}
	errInvalid := errors.New("ValidationException: item too large")
	calls := 0
	err := p.Do(context.Background(), func(ctx context.Context) error {
		calls++
		return retry.Permanent(errInvalid)
	})
	fmt.Println(calls, errors.Is(err, errInvalid))
	fmt.Println(err)
	// Output:
	// 1 true
	// retry: gave up after 1 attempt: permanent error; last error: ValidationException: item too large
}

func ExampleRetryAfter() {
	p := &retry.Policy{
		Backoff:    retry.Constant{Interval: time.Millisecond},
		HintSpread: retry.NoSpread,
		Observer: retry.ObserverFuncs{Retry: func(e retry.RetryEvent) {
			fmt.Printf("attempt %d failed (%v); sleeping %v\n", e.Attempt, e.Err, e.Delay)
		}},
	}
	calls := 0
	_ = p.Do(context.Background(), func(ctx context.Context) error {
		calls++
		if calls == 1 {
			// The server said "Retry-After: 0.02".
			return retry.RetryAfter(20*time.Millisecond, errors.New("429 Too Many Requests"))
		}
		return nil
	})
	fmt.Println("attempts:", calls)
	// Output:
	// attempt 1 failed (429 Too Many Requests); sleeping 20ms
	// attempts: 2
}

// The motivating scenario: a write that fails transiently half the time,
// retried with capped exponential backoff and full jitter. The seed makes the
// jitter, and so the output, reproducible.
func Example_flakyWrite() {
	flaky := retry.NewRand(8) // the service's coin
	write := func(ctx context.Context) error {
		if flaky() < 0.5 {
			return errors.New("ProvisionedThroughputExceededException")
		}
		return nil
	}
	p := &retry.Policy{
		MaxAttempts: 5,
		Backoff:     retry.Exponential{Base: 10 * time.Millisecond, Cap: 80 * time.Millisecond},
		Jitter:      retry.FullJitter,
		Rand:        retry.NewRand(2),
		Observer: retry.ObserverFuncs{Retry: func(e retry.RetryEvent) {
			fmt.Printf("attempt %d: %v; retrying in %v\n", e.Attempt, e.Err, e.Delay.Round(time.Microsecond))
		}},
	}
	for item := 1; item <= 5; item++ {
		err := p.Do(context.Background(), write)
		fmt.Printf("item %d: err=%v\n", item, err)
	}
	// Output:
	// attempt 1: ProvisionedThroughputExceededException; retrying in 7.678ms
	// attempt 2: ProvisionedThroughputExceededException; retrying in 12.011ms
	// item 1: err=<nil>
	// item 2: err=<nil>
	// attempt 1: ProvisionedThroughputExceededException; retrying in 5.717ms
	// attempt 2: ProvisionedThroughputExceededException; retrying in 2.069ms
	// item 3: err=<nil>
	// attempt 1: ProvisionedThroughputExceededException; retrying in 5.185ms
	// attempt 2: ProvisionedThroughputExceededException; retrying in 5.019ms
	// attempt 3: ProvisionedThroughputExceededException; retrying in 28.695ms
	// item 4: err=<nil>
	// item 5: err=<nil>
}
