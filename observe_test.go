package retry_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jittered/retry"
)

type ctxKey struct{}

// recorder is a ContextObserver that records every event with the value
// the context carried under ctxKey.
type recorder struct {
	mu      sync.Mutex
	retries []retry.RetryEvent
	success []retry.SuccessEvent
	gaveUp  []*retry.Error
	ctxVals []any
	plain   int // calls of OnRetry/OnGiveUp (must stay 0 for Do)
}

func (r *recorder) OnRetry(retry.RetryEvent) { r.mu.Lock(); r.plain++; r.mu.Unlock() }
func (r *recorder) OnGiveUp(*retry.Error)    { r.mu.Lock(); r.plain++; r.mu.Unlock() }
func (r *recorder) OnRetryContext(ctx context.Context, e retry.RetryEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries = append(r.retries, e)
	r.ctxVals = append(r.ctxVals, ctx.Value(ctxKey{}))
}
func (r *recorder) OnGiveUpContext(ctx context.Context, e *retry.Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gaveUp = append(r.gaveUp, e)
	r.ctxVals = append(r.ctxVals, ctx.Value(ctxKey{}))
}
func (r *recorder) OnSuccessContext(ctx context.Context, e retry.SuccessEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.success = append(r.success, e)
	r.ctxVals = append(r.ctxVals, ctx.Value(ctxKey{}))
}

func TestContextObserverSeesTheCallsContextAndItsEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		p := noJitter(5, 10*time.Millisecond)
		p.Observer = rec
		ctx := context.WithValue(t.Context(), ctxKey{}, "call-1")
		calls := 0
		if err := p.Do(ctx, failing(2, retry.Throttle(errTransient), &calls)); err != nil {
			t.Fatal(err)
		}
		if len(rec.retries) != 2 || rec.retries[0].Kind != retry.KindThrottle || rec.retries[1].Delay != 20*time.Millisecond {
			t.Errorf("retries %+v", rec.retries)
		}
		if len(rec.success) != 1 || rec.success[0] != (retry.SuccessEvent{Attempts: 3, Waited: 30 * time.Millisecond}) {
			t.Errorf("success %+v, want 3 attempts after 30ms", rec.success)
		}
		for i, v := range rec.ctxVals {
			if v != "call-1" {
				t.Errorf("event %d got context value %v, want the call's", i, v)
			}
		}

		// A first-try success on the fast path, with and without a calm limiter.
		rec.success = nil
		_ = p.Do(ctx, func(context.Context) error { return nil })
		l := mustLimiter(t, retry.LimiterConfig{})
		p.Limiter = l
		_, _ = retry.DoValue(ctx, p, func(context.Context) (int, error) { return 1, nil })
		p.Limiter = nil
		if len(rec.success) != 2 || rec.success[0].Attempts != 1 || rec.success[1].Attempts != 1 {
			t.Errorf("fast-path successes %+v, want two of 1 attempt", rec.success)
		}

		// Giving up: the same context, the reason, and an attempt timeout
		// reported as KindTimeout.
		rec.retries, rec.ctxVals = nil, nil
		p.AttemptTimeout = 5 * time.Millisecond
		err := p.Do(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
		if len(rec.gaveUp) != 1 || !errors.Is(err, rec.gaveUp[0]) || rec.gaveUp[0].Reason.Name() != "max_attempts" {
			t.Errorf("give-ups %v, Do returned %v", rec.gaveUp, err)
		}
		if len(rec.retries) != 4 || rec.retries[0].Kind != retry.KindTimeout {
			t.Errorf("retries after attempt timeouts %+v, want 4 of KindTimeout", rec.retries)
		}
		if rec.plain != 0 {
			t.Errorf("OnRetry/OnGiveUp called %d times for a ContextObserver", rec.plain)
		}

		// An invalid Policy and a context already done give up through it too.
		rec.gaveUp = nil
		_ = (&retry.Policy{MaxAttempts: -5, Observer: rec}).Do(ctx, func(context.Context) error { return nil })
		done, cancel := context.WithCancel(ctx)
		cancel()
		_ = p.Do(done, func(context.Context) error { return nil })
		if len(rec.gaveUp) != 2 || rec.gaveUp[0].Reason != retry.ReasonInvalid || rec.gaveUp[1].Reason != retry.ReasonContext {
			t.Errorf("early give-ups %v", rec.gaveUp)
		}
	})
}

// TestQueuedCountsTheLimitersLine: attempts held by a limiting limiter
// report the time past their delays as Queued; without a limiter it is 0.
func TestQueuedCountsTheLimitersLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := mustLimiter(t, retry.LimiterConfig{MinRate: 10})
		l.Observe(retry.OutcomeThrottled) // limiting, at the floor: 10/s
		rec := &recorder{}
		p := &retry.Policy{Limiter: l, Observer: rec}
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() { _ = p.Do(t.Context(), func(context.Context) error { return nil }) })
		}
		wg.Wait()
		var total time.Duration
		for _, s := range rec.success {
			total += s.Queued
		}
		// Five first attempts at 10/s: the last waits about 0.4 s, 1 s in all.
		if len(rec.success) != 5 || total < 500*time.Millisecond || total > 1500*time.Millisecond {
			t.Errorf("successes %+v: queued %v in all, want about 1s", rec.success, total)
		}

		rec.success = nil
		calls := 0
		q := &retry.Policy{MaxAttempts: 3, Backoff: retry.Constant{Interval: time.Millisecond}, Jitter: retry.NoJitter, Observer: rec}
		_ = q.Do(t.Context(), failing(1, errTransient, &calls))
		if len(rec.success) != 1 || rec.success[0].Queued != 0 || rec.success[0].Waited != time.Millisecond {
			t.Errorf("without a limiter: %+v, want Waited 1ms and Queued 0", rec.success)
		}
	})
}

func TestReasonName(t *testing.T) {
	want := map[retry.Reason]string{
		retry.ReasonMaxAttempts: "max_attempts", retry.ReasonMaxElapsed: "max_elapsed",
		retry.ReasonDeadline: "deadline", retry.ReasonPermanent: "permanent",
		retry.ReasonNotRetryable: "not_retryable", retry.ReasonContext: "context",
		retry.ReasonBudget: "budget", retry.ReasonInvalid: "invalid",
		0: "unknown", 200: "unknown",
	}
	for r, w := range want {
		if got := r.Name(); got != w {
			t.Errorf("Reason(%d).Name() = %q, want %q", r, got, w)
		}
	}
}

// nopContextObserver does nothing, without allocating.
type nopContextObserver struct{ n *int }

func (nopContextObserver) OnRetry(retry.RetryEvent)                               {}
func (nopContextObserver) OnGiveUp(*retry.Error)                                  {}
func (nopContextObserver) OnRetryContext(context.Context, retry.RetryEvent)       {}
func (nopContextObserver) OnGiveUpContext(context.Context, *retry.Error)          {}
func (o nopContextObserver) OnSuccessContext(context.Context, retry.SuccessEvent) { *o.n++ }

func TestContextObserverSuccessPathAllocatesNothing(t *testing.T) {
	n := 0
	p := &retry.Policy{Observer: nopContextObserver{&n}}
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	if a := testing.AllocsPerRun(1000, func() { _ = p.Do(ctx, op) }); a != 0 {
		t.Errorf("Do with a ContextObserver allocates %v times on the success path, want 0", a)
	}
	if n < 1000 {
		t.Errorf("OnSuccessContext called %d times, want every call", n)
	}
}
