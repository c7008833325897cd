package retry

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Permanent marks err as not worth retrying: Do stops at once and returns a
// give-up error wrapping err. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err or an error it wraps was marked Permanent.
func IsPermanent(err error) bool {
	_, ok := find[*permanentError](err)
	return ok
}

// Throttle marks err as a throttling answer from the service ("send less"):
// HTTP 429, DynamoDB's ProvisionedThroughputExceededException, AWS
// Throttling, SlowDown and the like. A throttle is retried like any transient
// error, but it may use its own schedule (Policy.ThrottleBackoff), cost a
// different budget amount, and it lowers the adaptive limiter's send rate.
// Throttle(nil) is nil.
func Throttle(err error) error {
	if err == nil {
		return nil
	}
	return &throttleError{err: err}
}

type throttleError struct{ err error }

func (e *throttleError) Error() string   { return e.err.Error() }
func (e *throttleError) Unwrap() error   { return e.err }
func (e *throttleError) Throttled() bool { return true }

// Throttler is implemented by errors that know whether they are throttles.
// Integrations implement it on their own error types.
type Throttler interface {
	Throttled() bool
}

// IsThrottle reports whether err, or an error it wraps, is a throttle: marked
// with Throttle or implementing Throttler with Throttled() == true.
func IsThrottle(err error) bool {
	t, ok := find[Throttler](err)
	return ok && t.Throttled()
}

// RetryAfter attaches a server's delay hint to cause: the next retry waits
// at least d. A hint is a floor, never a shortcut: the loop waits the larger
// of the hint (clamped to Policy.MaxHint, then spread by Policy.HintSpread)
// and the delay its schedule and jitter give. A zero or negative d adds
// nothing: the schedule's delay applies. RetryAfter(d, nil) is nil.
func RetryAfter(d time.Duration, cause error) error {
	if cause == nil {
		return nil
	}
	return &hintError{d: d, err: cause}
}

type hintError struct {
	d   time.Duration
	err error
}

func (e *hintError) Error() string                     { return e.err.Error() }
func (e *hintError) Unwrap() error                     { return e.err }
func (e *hintError) RetryAfter() (time.Duration, bool) { return e.d, e.d >= 0 }

// Hinter is implemented by errors that carry a server's delay hint
// (Retry-After, x-amz-retry-after, grpc-retry-pushback-ms). ok is false when
// there is no usable hint. The hint is a floor over the schedule's delay
// (see RetryAfter).
type Hinter interface {
	RetryAfter() (d time.Duration, ok bool)
}

// A SlackHinter is a Hinter whose hint may exceed the schedule's delay by at
// most HintSlack: the AWS SDKs bound x-amz-retry-after to [delay, delay +
// 5 s] (AmzHintSlack). A zero or negative slack means no such bound.
type SlackHinter interface {
	Hinter
	HintSlack() time.Duration
}

// AmzHintSlack is how far the AWS SDKs let x-amz-retry-after exceed the
// computed backoff: 5 s (aws-sdk-go-v2 aws/retry, "retry-after" clamp).
const AmzHintSlack = 5 * time.Second

// hint returns the first usable hint in err's chain, and its slack (0:
// none). A zero or negative hint is not usable.
func hint(err error) (d, slack time.Duration, ok bool) {
	h, ok := find[Hinter](err)
	if !ok {
		return 0, 0, false
	}
	d, ok = h.RetryAfter()
	if !ok || d <= 0 {
		return 0, 0, false
	}
	if s, isSlack := h.(SlackHinter); isSlack {
		slack = s.HintSlack()
	}
	return d, slack, true
}

// find is errors.As for a type known at compile time, without the
// reflection and the heap-allocated target of errors.As: it walks err's tree
// (Unwrap() error and Unwrap() []error) depth first and returns the first
// error of type T. It does not call As methods.
func find[T any](err error) (T, bool) {
	for err != nil {
		if t, ok := err.(T); ok {
			return t, true
		}
		switch x := err.(type) {
		case interface{ Unwrap() error }:
			err = x.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range x.Unwrap() {
				if t, ok := find[T](e); ok {
					return t, true
				}
			}
			err = nil
		default:
			err = nil
		}
	}
	var zero T
	return zero, false
}

// Reason says why a loop gave up.
type Reason uint8

// The reasons a loop gives up. Those decided by the client alone, not by the
// operation's result, say "client-side" in their text.
const (
	ReasonMaxAttempts  Reason = iota + 1 // the attempt limit was reached
	ReasonMaxElapsed                     // the next delay would pass Policy.MaxElapsed
	ReasonDeadline                       // the next delay would pass the context's deadline
	ReasonPermanent                      // the error was marked Permanent
	ReasonNotRetryable                   // a Classifier said Stop
	ReasonContext                        // the caller's context was canceled or expired
	ReasonBudget                         // the retry budget refused the retry
	ReasonInvalid                        // the Policy is invalid (see Policy.Validate)
)

var reasonText = [...]string{
	ReasonMaxAttempts:  "max attempts reached (client-side)",
	ReasonMaxElapsed:   "max elapsed time would be exceeded (client-side)",
	ReasonDeadline:     "next delay would pass the context deadline (client-side)",
	ReasonPermanent:    "permanent error",
	ReasonNotRetryable: "error not retryable",
	ReasonContext:      "context done",
	ReasonBudget:       "retry budget exhausted (client-side)",
	ReasonInvalid:      "invalid policy (client-side)",
}

// String says why, in words; client-side reasons say so.
func (r Reason) String() string {
	if int(r) < len(reasonText) && reasonText[r] != "" {
		return reasonText[r]
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

var reasonName = [...]string{
	ReasonMaxAttempts:  "max_attempts",
	ReasonMaxElapsed:   "max_elapsed",
	ReasonDeadline:     "deadline",
	ReasonPermanent:    "permanent",
	ReasonNotRetryable: "not_retryable",
	ReasonContext:      "context",
	ReasonBudget:       "budget",
	ReasonInvalid:      "invalid",
}

// Name is a short, stable identifier for r ("max_attempts", "deadline",
// "budget", …), for metric attributes and structured logs; "unknown" for a
// value that is not one of the Reasons.
func (r Reason) Name() string {
	if int(r) < len(reasonName) && reasonName[r] != "" {
		return reasonName[r]
	}
	return "unknown"
}

// Sentinel errors matched by errors.Is against a give-up *Error, one per
// Reason: errors.Is(err, retry.ErrBudgetExhausted).
var (
	ErrMaxAttempts     = errors.New("retry: max attempts reached (client-side)")
	ErrMaxElapsed      = errors.New("retry: max elapsed time would be exceeded (client-side)")
	ErrDeadline        = errors.New("retry: next delay would pass the context deadline (client-side)")
	ErrBudgetExhausted = errors.New("retry: retry budget exhausted (client-side)")
	ErrNotRetryable    = errors.New("retry: error not retryable")
	ErrInvalid         = errors.New("retry: invalid policy (client-side)")
)

// Error is the give-up error of Do and DoValue: why the loop stopped, how
// many attempts ran, how long it slept in total, and the last attempt's
// error, which errors.Is and errors.As reach. When the reason is
// ReasonContext, the context's cause is wrapped too.
type Error struct {
	Reason   Reason
	Attempts int           // attempts made, the first included
	Waited   time.Duration // total time slept between attempts
	// Queued is the time spent waiting for the Policy's Limiter beyond the
	// delays (in its line, or for a slot at its rate).
	Queued time.Duration
	Last   error // the last attempt's error (nil if none ran)
	Cause  error // context.Cause when Reason is ReasonContext; the validation error for ReasonInvalid
	// Unknown is true when the last error was a transport failure after the
	// request may have reached the service: its effect may have happened.
	// Integrations set it; the core never does.
	Unknown bool
}

// Error says why the loop gave up, after how many attempts and how much
// waiting, and the last error.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("retry: gave up after ")
	fmt.Fprintf(&b, "%d attempt", e.Attempts)
	if e.Attempts != 1 {
		b.WriteByte('s')
	}
	if e.Waited > 0 {
		fmt.Fprintf(&b, " (waited %v)", e.Waited)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason.String())
	if e.Cause != nil {
		b.WriteString(": ")
		b.WriteString(e.Cause.Error())
	}
	if e.Unknown {
		b.WriteString("; outcome of the last attempt unknown")
	}
	if e.Last != nil {
		b.WriteString("; last error: ")
		b.WriteString(e.Last.Error())
	}
	return b.String()
}

// Unwrap returns the last error and the cause, for errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	switch {
	case e.Last != nil && e.Cause != nil:
		return []error{e.Last, e.Cause}
	case e.Last != nil:
		return []error{e.Last}
	case e.Cause != nil:
		return []error{e.Cause}
	}
	return nil
}

// Is matches the sentinel of e's Reason.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrMaxAttempts:
		return e.Reason == ReasonMaxAttempts
	case ErrMaxElapsed:
		return e.Reason == ReasonMaxElapsed
	case ErrDeadline:
		return e.Reason == ReasonDeadline
	case ErrBudgetExhausted:
		return e.Reason == ReasonBudget
	case ErrNotRetryable:
		return e.Reason == ReasonNotRetryable
	case ErrInvalid:
		return e.Reason == ReasonInvalid
	}
	return false
}

// fieldError formats a configuration error naming the field, the value and
// what is allowed.
func fieldError(field string, value any, allowed string) error {
	return fmt.Errorf("retry: %s = %v: %s", field, value, allowed)
}
