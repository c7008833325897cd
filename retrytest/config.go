package retrytest

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Shape is how the service answers a request over capacity.
type Shape uint8

const (
	// DynamoDB answers HTTP 400 with DynamoDB's
	// ProvisionedThroughputExceededException body, content type, request id
	// and a correct x-amz-crc32, so that the AWS SDK for Go v2 classifies it
	// as a throttle with no special setup.
	DynamoDB Shape = iota
	// TooManyRequests answers 429 with Retry-After.
	TooManyRequests
	// Unavailable answers 503 with Retry-After.
	Unavailable
)

// String returns the shape's name as ParseShape reads it.
func (s Shape) String() string {
	switch s {
	case DynamoDB:
		return "dynamodb"
	case TooManyRequests:
		return "429"
	case Unavailable:
		return "503"
	}
	return fmt.Sprintf("Shape(%d)", uint8(s))
}

// ParseShape parses "dynamodb", "429" or "503".
func ParseShape(s string) (Shape, error) {
	switch s {
	case "dynamodb", "ddb":
		return DynamoDB, nil
	case "429", "toomanyrequests":
		return TooManyRequests, nil
	case "503", "unavailable":
		return Unavailable, nil
	}
	return 0, fmt.Errorf("retrytest: shape %q: must be dynamodb, 429 or 503", s)
}

// Fault is an injected failure.
type Fault uint8

// Faults. FaultNone lets the request through.
const (
	FaultNone Fault = iota
	Fault500
	Fault502
	Fault503
	Fault504
	// FaultReset resets the connection (TCP RST) after reading the request,
	// before anything is done with it.
	FaultReset
	// FaultResetAfter handles (or forwards) the request, then resets the
	// connection instead of answering: the client loses a response to a
	// request that took effect.
	FaultResetAfter
	// FaultThrottle answers as if over capacity.
	FaultThrottle
)

// Window is a span of time after the server starts.
type Window struct{ From, To time.Duration }

// Config configures a Server. The zero value serves every request at once
// with 200 and an empty JSON object, on a free port of 127.0.0.1.
type Config struct {
	// Addr to listen on; "" means 127.0.0.1:0. Only loopback addresses are
	// accepted unless AllowNonLoopback is set.
	Addr             string
	AllowNonLoopback bool

	// Rate is the capacity in requests per second; 0 means unlimited.
	Rate float64
	// Burst is the capacity's bucket size; 0 means max(1, Rate/10).
	Burst int
	// Key, if set, gives each key its own capacity (a table, a tenant).
	// DynamoDBTable keys by the request's TableName.
	Key func(r *http.Request, body []byte) string

	// Shape of throttle answers.
	Shape Shape
	// RetryAfter, if positive, is sent with 429/503 throttles (and with
	// injected 503s) as Retry-After.
	RetryAfter time.Duration
	// RetryAfterDate sends Retry-After as an HTTP-date instead of seconds.
	RetryAfterDate bool
	// AmzRetryAfter, if positive, is sent as x-amz-retry-after (ms) with
	// every throttle.
	AmzRetryAfter time.Duration

	// Probabilities of each injected fault per request that passes the
	// capacity check, in [0, 1], summing to at most 1.
	P500, P502, P503, P504, PReset, PResetAfter float64
	// Script, if set, forces the fault of the first len(Script) requests, in
	// order of arrival (FaultNone lets one through), before any other rule.
	Script []Fault
	// Outages are windows (from the server's start) in which every request
	// gets a 503.
	Outages []Window

	// PartialBatch is the probability that a DynamoDB BatchWriteItem
	// request passing every other check is only partly written: half of
	// each table's requests (rounded up) are forwarded, and the rest come
	// back as UnprocessedItems, as DynamoDB does under load. Proxy mode only.
	PartialBatch float64

	// Latency is added to every answer; Jitter adds a uniform random part
	// in [0, Jitter).
	Latency, Jitter time.Duration

	// Upstream, if set, makes the server a reverse proxy to that URL:
	// accepted requests are forwarded there.
	Upstream string
	// Handler answers accepted requests when there is no Upstream. nil
	// means 200 with "{}" (DynamoDB's answer to PutItem), a request id and
	// x-amz-crc32.
	Handler http.Handler

	// CounterWindow is how much of the per-Interval counters is kept (the
	// totals are kept whole); 0 means DefaultCounterWindow. It bounds the
	// counters' memory for a long-running Server.
	CounterWindow time.Duration

	// MaxBody bounds request bodies (413 beyond); 0 means 16 MiB.
	MaxBody int64
	// Record keeps every request's method, path, body hash and outcome
	// (Server.Requests). Off by default: it grows without bound.
	Record bool
	// Seed makes the fault coin reproducible (per order of arrival).
	Seed uint64
}

func (c Config) validate() error {
	var errs []error
	bad := func(field string, v any, allowed string) {
		errs = append(errs, fmt.Errorf("retrytest: Config.%s = %v: %s", field, v, allowed))
	}
	if math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) || c.Rate < 0 {
		bad("Rate", c.Rate, "must be a finite number ≥ 0 (0 means unlimited)")
	}
	if c.Burst < 0 {
		bad("Burst", c.Burst, "must be ≥ 0 (0 means max(1, Rate/10))")
	}
	if c.Shape > Unavailable {
		bad("Shape", c.Shape, "must be DynamoDB, TooManyRequests or Unavailable")
	}
	sum := 0.0
	for _, p := range []struct {
		name string
		v    float64
	}{{"P500", c.P500}, {"P502", c.P502}, {"P503", c.P503}, {"P504", c.P504}, {"PReset", c.PReset}, {"PResetAfter", c.PResetAfter}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			bad(p.name, p.v, "must be a probability in [0, 1]")
		}
		sum += p.v
	}
	if math.IsNaN(c.PartialBatch) || c.PartialBatch < 0 || c.PartialBatch > 1 {
		bad("PartialBatch", c.PartialBatch, "must be a probability in [0, 1]")
	} else if c.PartialBatch > 0 && c.Upstream == "" {
		bad("PartialBatch", c.PartialBatch, "needs Upstream (it rewrites the upstream's answer)")
	}
	if sum > 1+1e-9 {
		bad("P500+P502+P503+P504+PReset+PResetAfter", sum, "must be ≤ 1")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"RetryAfter", c.RetryAfter}, {"AmzRetryAfter", c.AmzRetryAfter}, {"Latency", c.Latency}, {"Jitter", c.Jitter}} {
		if d.v < 0 {
			bad(d.name, d.v, "must be ≥ 0")
		}
	}
	for i, w := range c.Outages {
		if w.From < 0 || w.To < w.From {
			bad(fmt.Sprintf("Outages[%d]", i), w, "must have 0 ≤ From ≤ To")
		}
	}
	for i, f := range c.Script {
		if f > FaultThrottle {
			bad(fmt.Sprintf("Script[%d]", i), f, "must be a Fault constant")
		}
	}
	if c.MaxBody < 0 {
		bad("MaxBody", c.MaxBody, "must be ≥ 0 (0 means 16 MiB)")
	}
	if c.CounterWindow != 0 && c.CounterWindow < Interval {
		bad("CounterWindow", c.CounterWindow, "must be ≥ 100ms (0 means 10m)")
	}
	if c.Upstream != "" {
		u, err := url.Parse(c.Upstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("Upstream", c.Upstream, "must be an absolute http(s) URL")
		}
		if c.Handler != nil {
			bad("Handler", "set", "must be nil when Upstream is set")
		}
	}
	addr := c.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		bad("Addr", c.Addr, "must be host:port")
	} else if !c.AllowNonLoopback {
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			bad("Addr", c.Addr, "must be a loopback address (127.0.0.0/8, ::1, localhost) unless AllowNonLoopback is set")
		}
	}
	return errors.Join(errs...)
}
