// Package grpcretry retries gRPC client calls with a retry.Policy: unary
// and streaming client interceptors that honour the server's RetryInfo and
// grpc-retry-pushback-ms hints, treat RESOURCE_EXHAUSTED as a throttle (for
// the Policy's budget, throttle schedule and adaptive limiter), never start
// a retry the call's deadline cannot accommodate, and tell the server which
// attempt it sees (grpc-previous-rpc-attempts, as gRFC A6 names it).
//
//	conn, err := grpc.NewClient(target,
//		grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(grpcretry.WithPolicy(policy))),
//		grpc.WithStreamInterceptor(grpcretry.StreamClientInterceptor(grpcretry.WithPolicy(policy))),
//		grpc.WithDisableRetry(), // optional: see "grpc-go's own retries" below
//	)
//
// # Classification
//
// By default, following gRFC A6 and the conventions of Google APIs:
// UNAVAILABLE is retried; RESOURCE_EXHAUSTED is a throttle (retried, paced
// by the limiter); DEADLINE_EXCEEDED is retried only when it was the
// attempt's own timeout (Policy.AttemptTimeout) and the call's context is
// live; CANCELLED and the caller's own cancellation or deadline never are;
// every other code stops at once. WithClassifier overrides this per method.
// A call that stops on a code that is not retried returns the invoker's
// error unchanged; a call that gives up otherwise returns a *GiveUpError:
// the *retry.Error saying why, with the status a caller expects
// (status.Code finds it).
//
// # Server hints
//
// A google.rpc.RetryInfo in the status details, and the
// grpc-retry-pushback-ms trailer, give the next delay; either is a floor
// over the Policy's schedule, bounded by its MaxHint (and spread by its
// HintSpread). A pushback that is negative or not a number means "do not
// retry", as gRFC A6 says.
//
// # Streams
//
// A stream is retried, as gRFC A6 specifies, only until its first response
// message (or its end) has been received: the messages sent until then are
// kept (up to BufferLimit bytes; past it the stream commits to its current
// attempt) and sent again on a new stream. Policy.AttemptTimeout does not
// apply to streams.
//
// # grpc-go's own retries
//
// grpc-go retries transparently, below interceptors, an RPC that never
// reached the server application (a stream refused before its headers):
// that stays on, and this package does not see it. grpc-go's configurable
// retry policy (service config "retryPolicy") also runs below interceptors,
// on every attempt this package makes: with both, the attempts multiply.
// This package never turns it off on its own; disable it with
// grpc.WithDisableRetry() when you use this package, or leave the service
// config without a retry policy.
//
// # OpenTelemetry
//
// Each attempt is a separate call of the invoker, so gRPC's OpenTelemetry
// instrumentation (a stats handler such as otelgrpc's) records one client
// span per attempt, children of the caller's span; an otelretry Observer on
// the Policy adds the retry events to the caller's span.
package grpcretry

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/jittered/retry"
)

// Metadata keys of gRFC A6.
const (
	// PreviousAttemptsKey is sent with every retry: how many attempts
	// preceded it.
	PreviousAttemptsKey = "grpc-previous-rpc-attempts"
	// PushbackKey is the server's trailer giving the next delay in
	// milliseconds (negative or malformed: do not retry).
	PushbackKey = "grpc-retry-pushback-ms"
)

// DefaultBufferLimit is how many bytes of a stream's sent messages are
// kept for a retry (gRFC A6's per-RPC buffer, grpc-go's default 256 KiB).
const DefaultBufferLimit = 256 << 10

// KeyFunc names the adaptive limiter a call uses, from the connection's
// target and the full method name ("/pkg.Service/Method").
type KeyFunc func(target, method string) string

// KeyByMethod keys limiters per method (the default).
func KeyByMethod(_, method string) string { return method }

// KeyByTarget keys limiters per target (one per server or service).
func KeyByTarget(target, _ string) string { return target }

type config struct {
	policy      *retry.Policy
	perMethod   func(method string) *retry.Policy
	limiters    *retry.LimiterSet
	key         KeyFunc
	classify    func(method string, err error) retry.Decision
	bufferLimit int
}

// An Option configures the interceptors.
type Option func(*config)

// WithPolicy sets the Policy of every call (default: the zero Policy, 3
// attempts). The Policy's Classifier, if any, is asked before the gRPC
// classification.
func WithPolicy(p *retry.Policy) Option { return func(c *config) { c.policy = p } }

// WithMethodPolicy gives some methods their own Policy: fn returns it, or
// nil for the default.
func WithMethodPolicy(fn func(method string) *retry.Policy) Option {
	return func(c *config) { c.perMethod = fn }
}

// WithLimiters gives each key (see KeyFunc; nil means KeyByMethod) its own
// adaptive limiter from s, in place of the Policy's Limiter.
func WithLimiters(s *retry.LimiterSet, key KeyFunc) Option {
	return func(c *config) { c.limiters, c.key = s, key }
}

// WithClassifier decides, per method, which errors are retried, before the
// default classification (return retry.Unknown to defer to it).
func WithClassifier(fn func(method string, err error) retry.Decision) Option {
	return func(c *config) { c.classify = fn }
}

// WithBufferLimit sets how many bytes of a stream's sent messages are kept
// for a retry (default DefaultBufferLimit; messages that are not protocol
// buffers count as 0 bytes).
func WithBufferLimit(n int) Option { return func(c *config) { c.bufferLimit = n } }

func newConfig(opts []Option) *config {
	c := &config{bufferLimit: DefaultBufferLimit}
	for _, o := range opts {
		o(c)
	}
	if c.key == nil {
		c.key = KeyByMethod
	}
	return c
}

// policyFor is the Policy of one call: the method's or the default, with
// the call's limiter and the gRPC classification.
func (c *config) policyFor(target, method string) *retry.Policy {
	var p retry.Policy
	if c.perMethod != nil {
		if mp := c.perMethod(method); mp != nil {
			p = *mp
		} else if c.policy != nil {
			p = *c.policy
		}
	} else if c.policy != nil {
		p = *c.policy
	}
	if c.limiters != nil {
		p.Limiter = c.limiters.Get(c.key(target, method))
	}
	user := p.Classifier
	p.Classifier = retry.ClassifierFunc(func(err error) retry.Decision {
		if user != nil {
			if d := user.Classify(err); d != retry.Unknown {
				return d
			}
		}
		if c.classify != nil {
			if d := c.classify(method, err); d != retry.Unknown {
				return d
			}
		}
		var a *attemptError
		if errors.As(err, &a) {
			return a.decision
		}
		return retry.Stop
	})
	return &p
}

// attemptError is an attempt's error with its default classification and
// the server's hint.
type attemptError struct {
	err      error
	decision retry.Decision
	hint     time.Duration
	timeout  bool // the attempt's own timeout: errors.Is finds DeadlineExceeded
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() []error {
	if e.timeout {
		return []error{e.err, context.DeadlineExceeded}
	}
	return []error{e.err}
}

// RetryAfter implements retry.Hinter.
func (e *attemptError) RetryAfter() (time.Duration, bool) { return e.hint, e.hint > 0 }

// GRPCStatus lets status.FromError see the attempt's status.
func (e *attemptError) GRPCStatus() *status.Status { return status.Convert(e.err) }

// Classify is the default classification of an attempt's error (see the
// package doc). parent is the call's context, attempt the attempt's.
func Classify(parent, attempt context.Context, err error, trailer metadata.MD) (retry.Decision, time.Duration) {
	st, ok := status.FromError(err)
	if !ok {
		return retry.Stop, 0
	}
	var d retry.Decision
	switch st.Code() {
	case codes.Unavailable:
		d = retry.Retry
	case codes.ResourceExhausted:
		d = retry.Throttled
	case codes.DeadlineExceeded:
		d = retry.Stop
		if !expired(parent) && expired(attempt) {
			d = retry.Retry // the attempt's own timeout
		}
	default:
		return retry.Stop, 0
	}
	var hint time.Duration
	for _, det := range st.Details() {
		if ri, ok := det.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			if h := ri.GetRetryDelay().AsDuration(); h > 0 {
				hint = h
			}
		}
	}
	if v := trailer.Get(PushbackKey); len(v) > 0 {
		ms, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil || ms < 0 {
			return retry.Stop, 0 // gRFC A6: do not retry
		}
		if ms > int64(time.Duration(1<<63-1)/time.Millisecond) {
			ms = int64(time.Duration(1<<63-1) / time.Millisecond)
		}
		hint = max(hint, time.Duration(ms)*time.Millisecond)
	}
	return d, hint
}

// expired reports whether ctx's deadline has passed — by the clock too:
// gRPC can report DEADLINE_EXCEEDED from its own timer a moment before the
// context's fires.
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// mark wraps an attempt's error with its classification.
func mark(parent, attempt context.Context, err error, trailer metadata.MD) error {
	if err == nil {
		return nil
	}
	d, hint := Classify(parent, attempt, err, trailer)
	e := &attemptError{err: err, decision: d, hint: hint}
	e.timeout = d == retry.Retry && status.Code(err) == codes.DeadlineExceeded
	return e
}

// unmark returns what the caller gets: the invoker's own error when the
// call stopped on an error that is not retried, else a *GiveUpError.
func unmark(err error) error {
	var re *retry.Error
	if !errors.As(err, &re) {
		return err
	}
	if re.Reason == retry.ReasonNotRetryable || re.Reason == retry.ReasonPermanent {
		var a *attemptError
		if errors.As(re.Last, &a) {
			return a.err
		}
	}
	return &GiveUpError{Err: re}
}

// GiveUpError is a call's error after retries: the *retry.Error saying why
// the interceptor gave up (errors.As finds it), with the gRPC status a
// caller expects: the caller's context's (CANCELLED or DEADLINE_EXCEEDED)
// when it ended the call, DEADLINE_EXCEEDED when the next retry could not
// fit in the deadline, else the last attempt's.
type GiveUpError struct {
	Err *retry.Error
}

func (e *GiveUpError) Error() string { return e.Err.Error() }
func (e *GiveUpError) Unwrap() error { return e.Err }

// GRPCStatus implements the interface status.FromError and status.Code
// look for.
func (e *GiveUpError) GRPCStatus() *status.Status {
	switch e.Err.Reason {
	case retry.ReasonContext:
		if e.Err.Cause != nil {
			return status.New(status.FromContextError(e.Err.Cause).Code(), e.Err.Error())
		}
	case retry.ReasonDeadline:
		return status.New(codes.DeadlineExceeded, e.Err.Error())
	}
	if e.Err.Last != nil {
		return status.New(status.Code(e.Err.Last), e.Err.Error())
	}
	return status.New(codes.Unknown, e.Err.Error())
}

func withAttempt(ctx context.Context, n int) context.Context {
	if n <= 1 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, PreviousAttemptsKey, strconv.Itoa(n-1))
}

// UnaryClientInterceptor retries unary calls.
func UnaryClientInterceptor(opts ...Option) grpc.UnaryClientInterceptor {
	c := newConfig(opts)
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, callOpts ...grpc.CallOption) error {
		p := c.policyFor(cc.Target(), method)
		attempt := 0
		err := p.Do(ctx, func(actx context.Context) error {
			attempt++
			var trailer metadata.MD
			o := append(append(make([]grpc.CallOption, 0, len(callOpts)+1), callOpts...), grpc.Trailer(&trailer))
			err := invoker(withAttempt(actx, attempt), method, req, reply, cc, o...)
			return mark(ctx, actx, err, trailer)
		})
		return unmark(err)
	}
}
