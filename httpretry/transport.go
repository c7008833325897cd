// Package httpretry retries HTTP requests with a retry.Policy: an
// http.RoundTripper that retries the idempotent methods of RFC 9110 (and
// requests with an Idempotency-Key), replays bodies
// byte-exactly, honours Retry-After and x-amz-retry-after within bounds,
// treats 429 and 503 as throttles, and drains every discarded response so
// connections are reused. It uses the standard library only.
package httpretry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jittered/retry"
)

// DefaultRetryStatuses are the statuses retried by default: 408 Request
// Timeout, 429 Too Many Requests, 500, 502, 503 and 504. Of these, 429 and
// 503 are throttles (DefaultThrottleStatuses).
var DefaultRetryStatuses = []int{
	http.StatusRequestTimeout, http.StatusTooManyRequests,
	http.StatusInternalServerError, http.StatusBadGateway,
	http.StatusServiceUnavailable, http.StatusGatewayTimeout,
}

// DefaultThrottleStatuses are the statuses that count as throttles: they
// cost the budget's throttle amount, use the Policy's ThrottleBackoff and
// lower the adaptive limiter's rate.
var DefaultThrottleStatuses = []int{http.StatusTooManyRequests, http.StatusServiceUnavailable}

// DefaultDrainLimit is how many bytes of a discarded response body are read
// before closing it, so that the connection can be reused (64 KiB). Longer
// bodies are closed unread and their connection is dropped.
const DefaultDrainLimit = 64 << 10

// Transport is an http.RoundTripper that retries. The zero value retries
// with the zero retry.Policy over http.DefaultTransport. A Transport is safe
// for concurrent use and must not be changed after first use.
type Transport struct {
	// Next sends each attempt. nil means http.DefaultTransport.
	Next http.RoundTripper
	// Policy decides when and how long to wait. nil means the zero Policy.
	// Its AttemptTimeout bounds each attempt until response headers arrive;
	// the body of the response returned is then bounded by the request's
	// own context only.
	Policy *retry.Policy
	// Limiters, if set, gives each host its own adaptive limiter (overriding
	// Policy.Limiter).
	Limiters *retry.LimiterSet

	// RetryStatuses are the statuses retried; nil means
	// DefaultRetryStatuses. Other statuses, 4xx among them, are returned.
	RetryStatuses []int
	// ThrottleStatuses are the retried statuses that are throttles; nil
	// means DefaultThrottleStatuses.
	ThrottleStatuses []int

	// Classify, if set, is asked about every response before the status
	// rules: Retry, Throttled or Stop decide; Unknown defers to
	// RetryStatuses. It may read the body if it puts back an equivalent one
	// (see PeekBody): a DynamoDB throttle is a 400 whose body says so.
	Classify func(*http.Response) retry.Decision

	// RetryNonIdempotent retries every method. By default only the methods
	// RFC 9110 §9.2.2 defines as idempotent are retried — GET, HEAD,
	// OPTIONS, TRACE, PUT and DELETE — and any request with an
	// Idempotency-Key or X-Idempotency-Key header (IsReplayable). That is
	// wider than net/http's own replay rule, which leaves PUT and DELETE
	// out because it replays without the caller asking; retrying them is
	// what this Transport is for, and the RFC makes sending them twice
	// equivalent to once. A server whose PUT or DELETE is not idempotent
	// should be called without this Transport, or with a Classify that
	// returns retry.Stop for them.
	RetryNonIdempotent bool
	// BufferBody, if positive, lets a request body without GetBody be
	// retried by buffering it, up to this many bytes. A longer body is sent
	// once, unbuffered. 0 means bodies without GetBody are sent once.
	BufferBody int64
	// ReturnLastResponse makes a request that runs out of attempts on a
	// retryable status return that last response, unread, with a nil error
	// (as go-retryablehttp users expect), instead of an error.
	ReturnLastResponse bool
	// DrainLimit is how much of each discarded body is read before closing
	// it. 0 means DefaultDrainLimit; negative means none.
	DrainLimit int64

	now func() time.Time // for tests of date hints
}

// NewClient returns an *http.Client whose Transport retries with p over
// http.DefaultTransport.
func NewClient(p *retry.Policy) *http.Client {
	return &http.Client{Transport: &Transport{Policy: p}}
}

type attemptKey struct{}

// Attempt returns which attempt of a Transport's request the context of a
// request belongs to: 2 for the first retry, 3 for the next, and 1 for the
// first attempt or a context that did not come from a Transport. A
// RoundTripper beneath the Transport (HTTP instrumentation) reads it to
// report OpenTelemetry's http.request.resend_count, Attempt − 1 (see
// otelretry.ResendCount).
func Attempt(ctx context.Context) int {
	if n, ok := ctx.Value(attemptKey{}).(int); ok {
		return n
	}
	return 1
}

// StatusError is the error of an attempt answered with a retryable status.
type StatusError struct {
	StatusCode int
	Status     string
	Method     string
	URL        string
	hint       time.Duration
	hinted     bool
	amz        bool // the hint came from x-amz-retry-after
	throttle   bool
}

// Error names the request (without its query) and the status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("httpretry: %s %s: %s", e.Method, e.URL, e.Status)
}

// RetryAfter returns the server's delay hint, if it sent a valid one. The
// retry loop treats it as a floor over its own delay (retry.RetryAfter).
func (e *StatusError) RetryAfter() (time.Duration, bool) { return e.hint, e.hinted }

// HintSlack is retry.AmzHintSlack (5 s) when the hint came from
// x-amz-retry-after: the AWS SDKs wait at most the computed backoff plus
// 5 s for it, and so does the retry loop (retry.SlackHinter). It is 0 for
// Retry-After, which only Policy.MaxHint bounds.
func (e *StatusError) HintSlack() time.Duration {
	if e.amz {
		return retry.AmzHintSlack
	}
	return 0
}

// Throttled reports whether the status is a throttle.
func (e *StatusError) Throttled() bool { return e.throttle }

// ErrBodyNotReplayable is wrapped by the error of a request that failed
// retryably but was not retried because its body cannot be sent again.
var ErrBodyNotReplayable = errors.New("httpretry: not retried: the request body cannot be replayed (it has no GetBody; set Transport.BufferBody to buffer it)")

// ErrNotIdempotent is wrapped by the error of a request that failed
// retryably but was not retried because its method is not idempotent.
var ErrNotIdempotent = errors.New("httpretry: not retried: the method is not idempotent and the request has no Idempotency-Key (set Transport.RetryNonIdempotent to retry anyway)")

// IsReplayable reports whether req may be sent again by default: a method
// RFC 9110 §9.2.2 defines as idempotent (GET, HEAD, OPTIONS, TRACE, PUT,
// DELETE; "" means GET), or an Idempotency-Key / X-Idempotency-Key header.
// net/http's own replay rule is narrower: it leaves out PUT and DELETE.
func IsReplayable(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	_, a := req.Header["Idempotency-Key"]
	_, b := req.Header["X-Idempotency-Key"]
	return a || b
}

func (t *Transport) next() http.RoundTripper {
	if t.Next != nil {
		return t.Next
	}
	return http.DefaultTransport
}

func (t *Transport) clock() time.Time {
	if t.now != nil {
		return t.now()
	}
	return time.Now()
}

func (t *Transport) drain(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	limit := t.DrainLimit
	if limit == 0 {
		limit = DefaultDrainLimit
	}
	if limit > 0 {
		_, _ = io.CopyN(io.Discard, resp.Body, limit)
	}
	resp.Body.Close()
}

// RoundTrip sends req, retrying as the Policy says. It never modifies req:
// each retry is a shallow clone with a fresh body from req.GetBody (or from
// the buffer). The response returned, if any, is untouched; every other
// response is drained and closed.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	replayable := t.RetryNonIdempotent || IsReplayable(req)
	first, getBody, err := t.bodySource(req, replayable)
	if err != nil {
		return nil, err
	}
	canRetry := replayable && getBody != nil

	policy := t.Policy
	if policy == nil {
		policy = &retry.Policy{}
	}
	attemptTimeout := policy.AttemptTimeout
	if attemptTimeout > 0 || t.Limiters != nil || !canRetry {
		cp := *policy
		cp.AttemptTimeout = 0 // applied here, to headers only
		if t.Limiters != nil {
			cp.Limiter = t.Limiters.Get(req.URL.Host)
		}
		if !canRetry {
			cp.MaxAttempts = 1
			cp.Budget = nil
		}
		policy = &cp
	}

	var last *http.Response // the last retryable response, kept for ReturnLastResponse
	attempt := 0
	resp, err := retry.DoValue(ctx, policy, func(ctx context.Context) (*http.Response, error) {
		attempt++
		if last != nil {
			t.drain(last)
			last = nil
		}
		r := req
		switch {
		case attempt > 1:
			r = req.Clone(context.WithValue(ctx, attemptKey{}, attempt))
			body, err := getBody()
			if err != nil {
				return nil, retry.Permanent(fmt.Errorf("httpretry: GetBody: %w", err))
			}
			r.Body = body
		case first != nil:
			r = req.Clone(ctx)
			r.Body = first
		}
		resp, err := t.send(r, attemptTimeout)
		if err != nil {
			return nil, t.classifyErr(err)
		}
		d := retry.Unknown
		if t.Classify != nil {
			d = t.Classify(resp)
		}
		if d == retry.Unknown {
			switch {
			case !slices.Contains(t.retryStatuses(), resp.StatusCode):
				d = retry.Stop
			case slices.Contains(t.throttleStatuses(), resp.StatusCode):
				d = retry.Throttled
			default:
				d = retry.Retry
			}
		}
		if d == retry.Stop {
			return resp, nil
		}
		serr := &StatusError{StatusCode: resp.StatusCode, Status: resp.Status, Method: req.Method, URL: redact(req), throttle: d == retry.Throttled}
		serr.hint, serr.hinted, serr.amz = hint(resp.Header, t.clock())
		last = resp
		return resp, serr
	})
	if attempt == 0 {
		// No attempt was made (context done, or no limiter slot before the
		// deadline): the body is still ours to close.
		if first != nil {
			first.Close()
		} else if req.Body != nil {
			req.Body.Close()
		}
	}
	if err == nil {
		return resp, nil
	}
	if last != nil {
		if t.ReturnLastResponse || !canRetry {
			// Out of attempts on a retryable status: hand back the response
			// (or, not retried at all, answer as a plain http.Client would).
			return last, nil
		}
		t.drain(last)
	}
	var gave *retry.Error
	if errors.As(err, &gave) {
		gave.Unknown = maySent(gave.Last)
		if !canRetry && gave.Reason == retry.ReasonMaxAttempts {
			why := ErrNotIdempotent
			if replayable {
				why = ErrBodyNotReplayable
			}
			return nil, fmt.Errorf("%w: %w", why, err)
		}
	}
	return nil, err
}

// send makes one attempt; a positive timeout bounds it until the response
// headers arrive. The returned body cancels the attempt's context on Close.
func (t *Transport) send(r *http.Request, timeout time.Duration) (*http.Response, error) {
	if timeout <= 0 {
		return t.next().RoundTrip(r)
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	timer := time.AfterFunc(timeout, func() { cancel(errAttemptTimeout) })
	resp, err := t.next().RoundTrip(r.WithContext(ctx))
	if !timer.Stop() && errors.Is(context.Cause(ctx), errAttemptTimeout) {
		// The timer fired: before the headers (err is the cancellation), or
		// after they arrived but before Stop. In the second case the
		// response's context is already cancelled and its body cannot be
		// read, so it is an attempt timeout too: discarded and retried,
		// never handed back half-dead.
		if err == nil {
			t.drain(resp)
			err = context.Cause(ctx)
		}
		cancel(nil)
		return nil, fmt.Errorf("%w after %v: %w", errAttemptTimeout, timeout, err)
	}
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: func() { cancel(nil) }}
	return resp, nil
}

var errAttemptTimeout = errors.New("httpretry: attempt timed out")

type cancelBody struct {
	io.ReadCloser
	cancel func()
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// classifyErr marks transport errors that will not pass on retry.
func (t *Transport) classifyErr(err error) error {
	var (
		unknownAuth *x509.UnknownAuthorityError
		hostname    x509.HostnameError
		invalid     x509.CertificateInvalidError
		verify      *tls.CertificateVerificationError
	)
	switch {
	case errors.As(err, &unknownAuth), errors.As(err, &hostname), errors.As(err, &invalid), errors.As(err, &verify):
		return retry.Permanent(err)
	}
	return err
}

// maySent reports whether a transport error may have come after the request
// reached the server (so its effect may have happened): anything but a
// failure to connect.
func maySent(err error) bool {
	if err == nil {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	return true // including timeouts and cancellations mid-request
}

func (t *Transport) retryStatuses() []int {
	if t.RetryStatuses != nil {
		return t.RetryStatuses
	}
	return DefaultRetryStatuses
}

func (t *Transport) throttleStatuses() []int {
	if t.ThrottleStatuses != nil {
		return t.ThrottleStatuses
	}
	return DefaultThrottleStatuses
}

// bodySource returns the body of the first attempt, when it is not
// req.Body itself, and how to get a fresh copy for a retry (nil if none can
// be had).
func (t *Transport) bodySource(req *http.Request, replayable bool) (first io.ReadCloser, getBody func() (io.ReadCloser, error), err error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, func() (io.ReadCloser, error) { return http.NoBody, nil }, nil
	}
	if req.GetBody != nil {
		return nil, req.GetBody, nil
	}
	if !replayable || t.BufferBody <= 0 {
		return nil, nil, nil
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, t.BufferBody+1))
	if err != nil {
		req.Body.Close()
		return nil, nil, fmt.Errorf("httpretry: reading the request body to buffer it: %w", err)
	}
	if int64(len(buf)) > t.BufferBody {
		// Too long to buffer: sent once, the part read followed by the rest.
		return readCloser{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}, nil, nil
	}
	req.Body.Close()
	getBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	first, _ = getBody()
	return first, getBody, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// PeekBody reads up to limit bytes of resp's body and puts back a body that
// yields the same bytes (what was read, then the rest), for Classify.
func PeekBody(resp *http.Response, limit int64) ([]byte, error) {
	if resp.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	return b, err
}

// AWSThrottleCodes are the AWS error codes AWSThrottle treats as throttles:
// the AWS SDK for Go v2's DefaultThrottleErrorCodes.
var AWSThrottleCodes = []string{
	"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
	"TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
	"RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
	"SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
}

// AWSThrottle is a Classify function for AWS JSON-protocol services
// (DynamoDB among them) called over plain HTTP: a 400 whose body's __type
// ends in a throttle code (AWSThrottleCodes) is Throttled, any other 400 is
// final (Stop); other statuses are left to the status rules. It reads at
// most 4 KiB of the body and puts it back.
func AWSThrottle(resp *http.Response) retry.Decision {
	if resp.StatusCode != http.StatusBadRequest {
		return retry.Unknown
	}
	b, _ := PeekBody(resp, 4096)
	var v struct {
		Type string `json:"__type"`
	}
	if json.Unmarshal(b, &v) == nil && v.Type != "" {
		code := v.Type[strings.LastIndexByte(v.Type, '#')+1:]
		if slices.Contains(AWSThrottleCodes, code) {
			return retry.Throttled
		}
	}
	return retry.Stop
}

// redact returns req's URL without user info or query, for error messages.
func redact(req *http.Request) string {
	if req.URL == nil {
		return ""
	}
	u := *req.URL
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	return u.String()
}
