package retry

import (
	"context"
	"log/slog"
	"time"
)

// RetryEvent describes a retry about to happen.
type RetryEvent struct {
	Attempt   int           // the attempt that just failed (1 for the first)
	Err       error         // its error
	Delay     time.Duration // the sleep before attempt Attempt+1
	Throttled bool          // the error was classified as a throttle
	Kind      Kind          // KindThrottle, KindTimeout (the attempt's own timeout) or KindTransient
}

// SuccessEvent describes a call that succeeded.
type SuccessEvent struct {
	Attempts int           // attempts made, 1 when the first one succeeded
	Waited   time.Duration // total of the delays slept between attempts
	Queued   time.Duration // time spent waiting for the Limiter beyond the delays
}

// A ContextObserver is an Observer that is also told when a call succeeds,
// and is given the call's context with every event, to find what travels in
// it (the current trace span, request-scoped attributes). When
// Policy.Observer implements it, Do and DoValue call these methods instead
// of OnRetry and OnGiveUp, and call OnSuccessContext when a call succeeds
// — on the success path too, so it must not allocate if that path is to
// stay allocation-free. A Run started with StartContext passes that
// context; other Runs pass context.Background().
type ContextObserver interface {
	Observer
	OnRetryContext(context.Context, RetryEvent)
	OnGiveUpContext(context.Context, *Error)
	OnSuccessContext(context.Context, SuccessEvent)
}

// An Observer is told of every retry, before its sleep, and of giving up.
// It is called on the retrying goroutine and must be safe for concurrent
// use when the Policy is shared. When Policy.Observer is nil nothing is
// called and nothing is paid.
type Observer interface {
	OnRetry(RetryEvent)
	OnGiveUp(*Error)
}

// ObserverFuncs adapts functions to Observer; nil fields are skipped.
type ObserverFuncs struct {
	Retry  func(RetryEvent)
	GiveUp func(*Error)
}

// OnRetry calls f.Retry.
func (f ObserverFuncs) OnRetry(e RetryEvent) {
	if f.Retry != nil {
		f.Retry(e)
	}
}

// OnGiveUp calls f.GiveUp.
func (f ObserverFuncs) OnGiveUp(e *Error) {
	if f.GiveUp != nil {
		f.GiveUp(e)
	}
}

// Slog is an Observer that logs to a log/slog Logger: each retry at Level
// (default Info), giving up at Warn.
type Slog struct {
	Logger *slog.Logger // nil means slog.Default()
	Level  slog.Level
}

func (s Slog) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// OnRetry logs "retrying" with attempt, error, delay and throttled.
func (s Slog) OnRetry(e RetryEvent) {
	s.logger().LogAttrs(context.Background(), s.Level, "retrying",
		slog.Int("attempt", e.Attempt), slog.Any("error", e.Err),
		slog.Duration("delay", e.Delay), slog.Bool("throttled", e.Throttled))
}

// OnGiveUp logs "giving up" with attempts, reason, waited and the error.
func (s Slog) OnGiveUp(e *Error) {
	s.logger().LogAttrs(context.Background(), slog.LevelWarn, "giving up",
		slog.Int("attempts", e.Attempts), slog.String("reason", e.Reason.String()),
		slog.Duration("waited", e.Waited), slog.Any("error", e.Last))
}
