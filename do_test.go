package retry_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jittered/retry"
)

var errTransient = errors.New("transient")

// failing returns an op that fails n times with err, then succeeds, counting calls.
func failing(n int, err error, calls *int) func(context.Context) error {
	return func(context.Context) error {
		*calls++
		if *calls <= n {
			return err
		}
		return nil
	}
}

func noJitter(attempts int, base time.Duration) *retry.Policy {
	return &retry.Policy{MaxAttempts: attempts, Backoff: retry.Exponential{Base: base, Cap: time.Hour}, Jitter: retry.NoJitter}
}

func TestDoExactSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := noJitter(5, 100*time.Millisecond)
		calls := 0
		start := time.Now()
		if err := p.Do(t.Context(), failing(3, errTransient, &calls)); err != nil {
			t.Fatalf("Do = %v, want success on the 4th attempt", err)
		}
		if got, want := time.Since(start), 700*time.Millisecond; got != want { // 100+200+400
			t.Errorf("elapsed %v, want exactly %v", got, want)
		}
		if calls != 4 {
			t.Errorf("calls = %d, want 4", calls)
		}
	})
}

func TestDoMaxAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := noJitter(4, 10*time.Millisecond)
		calls := 0
		start := time.Now()
		err := p.Do(t.Context(), failing(100, errTransient, &calls))
		var re *retry.Error
		if !errors.As(err, &re) {
			t.Fatalf("Do = %v, want *retry.Error", err)
		}
		if re.Reason != retry.ReasonMaxAttempts || re.Attempts != 4 || calls != 4 {
			t.Errorf("reason %v attempts %d calls %d, want max attempts after 4", re.Reason, re.Attempts, calls)
		}
		if re.Waited != 70*time.Millisecond || time.Since(start) != 70*time.Millisecond {
			t.Errorf("waited %v, elapsed %v, want 70ms (no sleep after the last attempt)", re.Waited, time.Since(start))
		}
		if !errors.Is(err, errTransient) || !errors.Is(err, retry.ErrMaxAttempts) {
			t.Errorf("errors.Is does not reach the last error or the sentinel: %v", err)
		}
		if !strings.Contains(err.Error(), "4 attempts") || !strings.Contains(err.Error(), "client-side") {
			t.Errorf("message %q lacks the attempt count or client-side", err)
		}
	})
}

func TestDoZeroPolicyDefaults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var p retry.Policy
		p.Rand = func() float64 { return 0.5 } // full jitter at its middle
		calls := 0
		start := time.Now()
		err := p.Do(t.Context(), failing(100, errTransient, &calls))
		if calls != retry.DefaultMaxAttempts {
			t.Errorf("calls = %d, want %d", calls, retry.DefaultMaxAttempts)
		}
		if got, want := time.Since(start), 25*time.Millisecond+50*time.Millisecond; got != want {
			t.Errorf("elapsed %v, want %v (half of 50ms and of 100ms)", got, want)
		}
		if !errors.Is(err, errTransient) {
			t.Errorf("err = %v", err)
		}
		// A nil *Policy behaves as the zero Policy.
		var nilp *retry.Policy
		calls = 0
		if err := nilp.Do(t.Context(), failing(1, errTransient, &calls)); err != nil || calls != 2 {
			t.Errorf("nil policy: err %v calls %d", err, calls)
		}
	})
}

func TestDoDeadlineAwareness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
		defer cancel()
		p := noJitter(10, 100*time.Millisecond)
		calls := 0
		start := time.Now()
		err := p.Do(ctx, failing(100, errTransient, &calls))
		// Sleeps 100 (t=100) and 200 would end at 300 > 250: give up at t=100.
		if got := time.Since(start); got != 100*time.Millisecond {
			t.Errorf("gave up at %v, want 100ms (before sleeping into the deadline)", got)
		}
		if calls != 2 || !errors.Is(err, retry.ErrDeadline) || !errors.Is(err, errTransient) {
			t.Errorf("calls %d err %v, want 2 calls, ErrDeadline wrapping the last error", calls, err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the context had not expired; err must not claim it: %v", err)
		}
	})
}

func TestDoMaxElapsed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := noJitter(retry.Unlimited, 100*time.Millisecond)
		p.MaxElapsed = time.Second
		calls := 0
		start := time.Now()
		err := p.Do(t.Context(), failing(1000, errTransient, &calls))
		// 100+200+400 = 700; next 800 would end at 1500 > 1000.
		if got := time.Since(start); got != 700*time.Millisecond || calls != 4 {
			t.Errorf("elapsed %v calls %d, want 700ms and 4", got, calls)
		}
		if !errors.Is(err, retry.ErrMaxElapsed) {
			t.Errorf("err = %v, want ErrMaxElapsed", err)
		}
	})
}

func TestDoCancelMidSleep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cause := errors.New("shutting down")
		ctx, cancel := context.WithCancelCause(t.Context())
		p := noJitter(5, time.Hour)
		calls := 0
		done := make(chan error)
		start := time.Now()
		go func() { done <- p.Do(ctx, failing(100, errTransient, &calls)) }()
		time.Sleep(time.Minute)
		synctest.Wait()
		cancel(cause)
		err := <-done
		if got := time.Since(start); got != time.Minute {
			t.Errorf("returned after %v, want at once on cancel (1m)", got)
		}
		if !errors.Is(err, cause) || !errors.Is(err, errTransient) {
			t.Errorf("err %v must reach the cause and the last error", err)
		}
		var re *retry.Error
		if !errors.As(err, &re) || re.Reason != retry.ReasonContext || re.Waited != time.Minute {
			t.Errorf("err %#v, want ReasonContext having waited 1m", re)
		}
	})
}

func TestDoContextAlreadyDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := (&retry.Policy{}).Do(ctx, func(context.Context) error { called = true; return nil })
	if called || !errors.Is(err, context.Canceled) {
		t.Errorf("called %v err %v: a done context must not run the op", called, err)
	}
}

func TestDoParentContextErrorNeverRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		calls := 0
		err := noJitter(5, time.Millisecond).Do(ctx, func(ctx context.Context) error {
			calls++
			cancel()
			return ctx.Err()
		})
		if calls != 1 || !errors.Is(err, context.Canceled) {
			t.Errorf("calls %d err %v, want 1 call and context.Canceled", calls, err)
		}
	})
}

func TestDoAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := noJitter(3, 10*time.Millisecond)
		p.AttemptTimeout = 50 * time.Millisecond
		calls := 0
		start := time.Now()
		err := p.Do(t.Context(), func(ctx context.Context) error {
			calls++
			if calls < 3 {
				<-ctx.Done() // hang until the attempt's own timeout
				return ctx.Err()
			}
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("attempt context has no deadline")
			}
			return nil
		})
		if err != nil || calls != 3 {
			t.Fatalf("err %v calls %d, want success on attempt 3", err, calls)
		}
		if got, want := time.Since(start), (50+10+50+20)*time.Millisecond; got != want {
			t.Errorf("elapsed %v, want %v", got, want)
		}
	})
}

func TestDoPermanent(t *testing.T) {
	calls := 0
	base := errors.New("bad request")
	err := noJitter(5, time.Millisecond).Do(context.Background(), func(context.Context) error {
		calls++
		return retry.Permanent(base)
	})
	var re *retry.Error
	if calls != 1 || !errors.As(err, &re) || re.Reason != retry.ReasonPermanent || !errors.Is(err, base) {
		t.Errorf("calls %d err %v, want one call, ReasonPermanent wrapping the error", calls, err)
	}
	if retry.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
}

func TestDoClassifierChain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		errNotFound := errors.New("not found")
		errBusy := errors.New("busy")
		asked := []string{}
		p := noJitter(5, time.Millisecond)
		p.Classifier = retry.Classifiers{
			retry.ClassifierFunc(func(err error) retry.Decision {
				asked = append(asked, "first")
				if errors.Is(err, errNotFound) {
					return retry.Stop
				}
				return retry.Unknown
			}),
			nil, // skipped
			retry.ClassifierFunc(func(err error) retry.Decision {
				asked = append(asked, "second")
				if errors.Is(err, errBusy) {
					return retry.Throttled
				}
				return retry.Unknown
			}),
		}
		calls := 0
		err := p.Do(t.Context(), func(context.Context) error {
			calls++
			if calls == 1 {
				return errBusy
			}
			return errNotFound
		})
		if calls != 2 || !errors.Is(err, retry.ErrNotRetryable) || !errors.Is(err, errNotFound) {
			t.Errorf("calls %d err %v", calls, err)
		}
		if strings.Join(asked, ",") != "first,second,first" {
			t.Errorf("classifiers asked %v", asked)
		}
	})
}

func TestDoServerHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := noJitter(4, time.Millisecond)
		p.HintSpread = retry.NoSpread
		p.MaxHint = 5 * time.Second
		hints := []time.Duration{2 * time.Second, time.Hour, -time.Second}
		calls := 0
		start := time.Now()
		err := p.Do(t.Context(), func(context.Context) error {
			calls++
			if calls <= len(hints) {
				return retry.RetryAfter(hints[calls-1], errTransient)
			}
			return nil
		})
		// 2s hint obeyed, 1h clamped to 5s, negative ignored → schedule's 4ms.
		if want := 2*time.Second + 5*time.Second + 4*time.Millisecond; err != nil || time.Since(start) != want {
			t.Errorf("err %v elapsed %v, want %v", err, time.Since(start), want)
		}
	})
}

func TestDoHintSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := noJitter(2, time.Millisecond)
		p.HintSpread = 0.5
		p.Rand = func() float64 { return 0.5 }
		calls := 0
		start := time.Now()
		_ = p.Do(t.Context(), func(context.Context) error {
			calls++
			if calls == 1 {
				return retry.RetryAfter(time.Second, errTransient)
			}
			return nil
		})
		if got := time.Since(start); got != 1250*time.Millisecond {
			t.Errorf("slept %v, want hint·(1+0.5·0.5) = 1.25s", got)
		}
	})
}

// An invalid Policy never misbehaves: the numeric fields a first attempt
// depends on are checked before it; the schedule, jitter and classifier,
// which only a failure uses, at the first failure, before any of them runs.
func TestDoInvalidPolicy(t *testing.T) {
	cases := []struct {
		name    string
		p       retry.Policy
		field   string
		numeric bool // refused before the first attempt
	}{
		{"MaxAttempts -5", retry.Policy{MaxAttempts: -5}, "Policy.MaxAttempts = -5", true},
		{"negative MaxElapsed", retry.Policy{MaxElapsed: -1}, "Policy.MaxElapsed = -1ns", true},
		{"negative AttemptTimeout", retry.Policy{AttemptTimeout: -1}, "Policy.AttemptTimeout = -1ns", true},
		{"negative MaxHint", retry.Policy{MaxHint: -1}, "Policy.MaxHint = -1ns", true},
		{"NaN spread", retry.Policy{HintSpread: math.NaN()}, "Policy.HintSpread = NaN", true},
		{"negative base", retry.Policy{Backoff: retry.Exponential{Base: -time.Second}}, "Exponential.Base = -1s", false},
		{"nil JitterFunc", retry.Policy{Jitter: retry.JitterFunc(nil)}, "Policy.Jitter is a nil JitterFunc", false},
		{"nil ClassifierFunc", retry.Policy{Classifier: retry.ClassifierFunc(nil)}, "Policy.Classifier is a nil ClassifierFunc", false},
		{"nil ClassifierFunc in Classifiers", retry.Policy{Classifier: retry.Classifiers{nil, retry.ClassifierFunc(nil)}}, "Policy.Classifier[1] is a nil ClassifierFunc", false},
		{"base above the default cap", retry.Policy{Backoff: retry.Exponential{Base: 30 * time.Second}}, "Exponential.Cap = 0s", false},
		{"invalid throttle schedule", retry.Policy{ThrottleBackoff: retry.Linear{Base: time.Second, Step: -1}}, "Policy.ThrottleBackoff: retry: Linear.Step = -1ns", false},
		{"invalid percent jitter", retry.Policy{Jitter: retry.PercentJitter(2)}, "PercentJitter.p = 2", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantCalls := 1
			if c.numeric {
				wantCalls = 0
			}
			calls := 0
			err := c.p.Do(context.Background(), failing(5, errTransient, &calls))
			var re *retry.Error
			if !errors.As(err, &re) || re.Reason != retry.ReasonInvalid || calls != wantCalls || !strings.Contains(err.Error(), c.field) || !errors.Is(err, retry.ErrInvalid) {
				t.Errorf("failing op: err %v after %d calls, want ReasonInvalid naming %q after %d", err, calls, c.field, wantCalls)
			}
			calls = 0
			err = c.p.Do(context.Background(), failing(0, nil, &calls))
			if c.numeric && (!errors.Is(err, retry.ErrInvalid) || calls != 0) {
				t.Errorf("succeeding op: err %v after %d calls, want ErrInvalid before any call", err, calls)
			}
			if !c.numeric && (err != nil || calls != 1) {
				t.Errorf("succeeding op: err %v after %d calls, want success (the field is unused)", err, calls)
			}
			if err := c.p.Validate(); err == nil || !strings.Contains(err.Error(), c.field) {
				t.Errorf("Validate() = %v, want an error naming %q", err, c.field)
			}
		})
	}

	// Nothing is remembered: a copy of a Policy in use, changed afterwards,
	// is refused although the original passed.
	p := &retry.Policy{Backoff: retry.Exponential{Base: time.Millisecond}}
	calls := 0
	if err := p.Do(context.Background(), failing(0, nil, &calls)); err != nil || calls != 1 {
		t.Fatalf("valid policy: %v after %d calls", err, calls)
	}
	q := *p
	q.MaxAttempts = -5
	if err := q.Do(context.Background(), failing(0, nil, &calls)); !errors.Is(err, retry.ErrInvalid) {
		t.Errorf("a changed copy of a validated Policy: err %v, want ErrInvalid", err)
	}

	// A Run's first failure validates too, before the classifier is asked.
	bad := &retry.Policy{Classifier: retry.ClassifierFunc(nil)}
	r := bad.Start(time.Time{})
	if _, gerr := r.FailedAt(time.Time{}, errTransient, time.Time{}); gerr == nil || gerr.Reason != retry.ReasonInvalid {
		t.Errorf("Run.FailedAt with a nil ClassifierFunc: %v, want ReasonInvalid", gerr)
	}
}

func TestDoNilArgumentsPanicWithAMessage(t *testing.T) {
	for _, c := range []struct {
		name, want string
		f          func()
	}{
		{"nil ctx", "retry: nil Context", func() {
			//lint:ignore SA1012 the nil Context is the point of the test
			_ = (&retry.Policy{}).Do(nil, func(context.Context) error { return nil })
		}},
		{"nil op", "retry: nil op", func() { _ = (&retry.Policy{}).Do(context.Background(), nil) }},
		{"nil DoValue op", "retry: nil op", func() { _, _ = retry.DoValue[int](context.Background(), nil, nil) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.HasPrefix(msg, c.want) {
					t.Errorf("panic %v, want a message starting %q", r, c.want)
				}
			}()
			c.f()
		})
	}
}

func TestDoValue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		v, err := retry.DoValue(t.Context(), noJitter(3, time.Millisecond), func(context.Context) (string, error) {
			calls++
			if calls < 2 {
				return "partial", errTransient
			}
			return "done", nil
		})
		if v != "done" || err != nil {
			t.Errorf("DoValue = %q, %v", v, err)
		}
		v, err = retry.DoValue(t.Context(), noJitter(2, time.Millisecond), func(context.Context) (string, error) {
			return "last", errTransient
		})
		if v != "last" || !errors.Is(err, errTransient) {
			t.Errorf("DoValue on give-up = %q, %v; want the last value and error", v, err)
		}
	})
}

func TestObserverAndSlog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []retry.RetryEvent
		var gaveUp *retry.Error
		p := noJitter(3, 10*time.Millisecond)
		p.Observer = retry.ObserverFuncs{
			Retry:  func(e retry.RetryEvent) { events = append(events, e) },
			GiveUp: func(e *retry.Error) { gaveUp = e },
		}
		calls := 0
		err := p.Do(t.Context(), failing(10, retry.Throttle(errTransient), &calls))
		if len(events) != 2 || events[0].Attempt != 1 || events[1].Delay != 20*time.Millisecond || !events[0].Throttled {
			t.Errorf("events %+v", events)
		}
		if gaveUp == nil || !errors.Is(err, gaveUp) {
			t.Errorf("give-up hook got %v, Do returned %v", gaveUp, err)
		}

		var buf bytes.Buffer
		p.Observer = retry.Slog{Logger: slog.New(slog.NewTextHandler(&buf, nil))}
		calls = 0
		_ = p.Do(t.Context(), failing(10, errTransient, &calls))
		out := buf.String()
		if strings.Count(out, "msg=retrying") != 2 || !strings.Contains(out, "msg=\"giving up\"") || !strings.Contains(out, "delay=10ms") {
			t.Errorf("slog output:\n%s", out)
		}
	})
}

// TestSharedPolicyRace runs one Policy from 100 goroutines under -race.
func TestSharedPolicyRace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &retry.Policy{MaxAttempts: 5, Backoff: retry.Exponential{Base: time.Millisecond, Cap: 50 * time.Millisecond}}
		var ok, failed atomic.Int64
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				var n atomic.Int64
				err := p.Do(t.Context(), func(context.Context) error {
					if n.Add(1) <= int64(i%7) {
						return errTransient
					}
					return nil
				})
				if err == nil {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		// i%7 failures: 0..4 succeed within 5 attempts, 5 and 6 do not.
		var wantOK int64
		for i := range 100 {
			if i%7 <= 4 {
				wantOK++
			}
		}
		if ok.Load() != wantOK || failed.Load() != 100-wantOK {
			t.Errorf("ok %d failed %d, want %d and %d", ok.Load(), failed.Load(), wantOK, 100-wantOK)
		}
	})
}

func TestDelaysIteratorAndPlan(t *testing.T) {
	p := &retry.Policy{MaxAttempts: 5, Backoff: retry.Exponential{Base: 100 * time.Millisecond, Cap: 300 * time.Millisecond}, Jitter: retry.EqualJitter, Rand: func() float64 { return 0 }}
	var got []string
	for n, d := range p.Delays() {
		got = append(got, fmt.Sprintf("%d:%v", n, d))
	}
	if s := strings.Join(got, " "); s != "1:50ms 2:100ms 3:150ms 4:150ms" {
		t.Errorf("Delays = %s", s)
	}
	plan := p.Plan(0)
	if len(plan) != 4 || plan[3].Min != 150*time.Millisecond || plan[3].Max != 300*time.Millisecond-1 || plan[3].TotalMin != 450*time.Millisecond {
		t.Errorf("Plan = %+v", plan)
	}
	var buf bytes.Buffer
	if err := p.WriteSchedule(&buf, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "attempts=5") || strings.Count(buf.String(), "\n") != 7 {
		t.Errorf("schedule:\n%s", buf.String())
	}
	unl := &retry.Policy{MaxAttempts: retry.Unlimited}
	n := 0
	for range unl.Delays() {
		if n++; n == 1000 {
			break
		}
	}
	if n != 1000 || len(unl.Plan(0)) != 20 {
		t.Errorf("unlimited: iterated %d, plan %d rows", n, len(unl.Plan(0)))
	}
}

// TestDoCalmLimiterAllocatesNothing: the success path with a limiter that is
// not limiting allocates nothing.
func TestDoCalmLimiterAllocatesNothing(t *testing.T) {
	l, _ := retry.NewAdaptiveLimiter(retry.LimiterConfig{})
	p := &retry.Policy{Limiter: l}
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(1000, func() { _ = p.Do(ctx, op) }); n != 0 {
		t.Errorf("Do with a calm limiter: %v allocs per call, want 0", n)
	}
	if _, limiting := l.Rate(); limiting {
		t.Error("the limiter is limiting without a throttle")
	}
}
