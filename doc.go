// Package retry retries operations against throttled and flaky services the
// way it should be done: capped exponential backoff with jitter, deadline
// awareness, error classification, bounded server hints, retry budgets and
// adaptive client-side rate limiting. It uses the standard library only.
//
// # The model
//
// A Policy is configuration, shared by any number of goroutines. Do (or
// DoValue) runs an operation: attempt 1 is the first call; if it fails with
// an error worth retrying, the loop sleeps the schedule's first delay,
// makes attempt 2, and so on. The delay before attempt n+1 is
// Jitter(Backoff.Delay(n)). Attempts are always counted with the first one
// included: MaxAttempts = 3 means one call and at most two retries.
//
// The loop gives up — with a *Error that says why, how many attempts ran and
// how long it slept, and wraps the last error — when:
//   - the error is Permanent, or a Classifier says Stop;
//   - MaxAttempts attempts have run;
//   - the next delay would end past MaxElapsed, or past the context's
//     deadline (it gives up now instead of sleeping into a certain failure);
//   - the context is canceled (at once, even mid-sleep);
//   - the Budget refuses the retry.
//
// A server's delay hint (RetryAfter, or any error implementing Hinter) is a
// floor over the scheduled delay, never a shortcut: the loop waits the
// longer of the two, so "Retry-After: 0" cannot turn backoff into a storm.
// The hint is clamped to MaxHint, then spread upward by HintSpread so that
// clients told the same hint do not return together; x-amz-retry-after
// (SlackHinter) is further bounded by the delay plus 5 s, as the AWS SDKs do.
//
// # Defaults
//
//	Field          Zero value means                 Source
//	MaxAttempts    3                                AWS SDKs, standard retry mode
//	Backoff        Exponential 50 ms ×2, cap 20 s   AWS SDKs (2026 standard mode: 50 ms base, 20 s max backoff)
//	Jitter         FullJitter                       AWS Architecture Blog, "Exponential Backoff And Jitter" (2015)
//	MaxHint        20 s                             same bound as the cap
//	HintSpread     0.1 (up to 10 % above a hint)    this package: avoids synchronized returns
//	Classifier     retry all but Permanent/context  —
//	Budget, Limiter, Observer, MaxElapsed, AttemptTimeout: none
//
// gRPC's default backoff (1 s base, ×1.6, 120 s cap, ±20 % jitter) is
// Exponential{Base: time.Second, Multiplier: 1.6, Cap: 120 * time.Second}
// with PercentJitter(0.2).
//
// # Throttling
//
// Backoff protects a service from one client; it does not stop a fleet from
// multiplying the load on a service that is already throttling. Two shared
// objects do: a Budget (a token bucket that grants retries only while most
// calls succeed; presets for the AWS SDKs and gRPC) and an AdaptiveLimiter
// (a client-side send rate that falls when throttles appear and rises when
// they stop; the AWS SDKs' CUBIC is a preset). Throttles are their own
// outcome: mark them with Throttle, implement Throttler, or classify them as
// Throttled.
//
// # Performance
//
// When the first attempt succeeds, Do allocates nothing and reads no clock
// (unless MaxElapsed, AttemptTimeout, a Limiter or a refilling Budget ask for
// it). See BENCHMARKS.md.
//
// # References
//
//   - Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog, 2015.
//   - Amazon Builders' Library, "Timeouts, retries, and backoff with jitter".
//   - AWS SDKs and Tools reference guide, "Retry behavior"; aws-sdk-go-v2 aws/retry.
//   - gRFC A6, "gRPC Retry Design" (retry throttling, server pushback).
package retry
