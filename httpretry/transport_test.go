package httpretry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/jittered/retry"
)

// fakeRT answers from a script of responses and records what it was sent.
type fakeRT struct {
	mu      sync.Mutex
	script  []func(*http.Request) (*http.Response, error)
	bodies  []string
	times   []time.Time
	reqs    []*http.Request
	closers []*trackBody
}

type trackBody struct {
	io.Reader
	read   int
	closed bool
}

func (b *trackBody) Read(p []byte) (int, error) {
	n, err := b.Reader.Read(p)
	b.read += n
	return n, err
}
func (b *trackBody) Close() error { b.closed = true; return nil }

func (f *fakeRT) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		r.Body.Close()
	}
	f.bodies = append(f.bodies, string(body))
	f.times = append(f.times, time.Now())
	f.reqs = append(f.reqs, r)
	i := len(f.bodies) - 1
	if i >= len(f.script) {
		i = len(f.script) - 1
	}
	resp, err := f.script[i](r)
	if resp != nil {
		tb := &trackBody{Reader: resp.Body}
		resp.Body = tb
		f.closers = append(f.closers, tb)
	}
	return resp, err
}

func status(code int, hdr ...string) func(*http.Request) (*http.Response, error) {
	return func(r *http.Request) (*http.Response, error) {
		h := http.Header{}
		for i := 0; i+1 < len(hdr); i += 2 {
			h.Set(hdr[i], hdr[i+1])
		}
		return &http.Response{StatusCode: code, Status: http.StatusText(code), Header: h, Request: r,
			Body: io.NopCloser(strings.NewReader(strings.Repeat("x", 100) + "-" + http.StatusText(code)))}, nil
	}
}

func netErr(err error) func(*http.Request) (*http.Response, error) {
	return func(*http.Request) (*http.Response, error) { return nil, err }
}

func policy(attempts int) *retry.Policy {
	return &retry.Policy{MaxAttempts: attempts, Backoff: retry.Constant{Interval: 10 * time.Millisecond}, Jitter: retry.NoJitter, HintSpread: retry.NoSpread}
}

func TestRetriesThrottleWithRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRT{script: []func(*http.Request) (*http.Response, error){
			status(429, "Retry-After", "2"),
			status(503, "X-Amz-Retry-After", "1500"),
			status(200),
		}}
		tr := &Transport{Next: f, Policy: policy(5)}
		req, _ := http.NewRequest("GET", "http://svc.local/items?secret=1", nil)
		start := time.Now()
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("resp %v err %v", resp, err)
		}
		if got := f.times[1].Sub(start); got != 2*time.Second {
			t.Errorf("second attempt after %v, want Retry-After 2s", got)
		}
		if got := f.times[2].Sub(f.times[1]); got != 1500*time.Millisecond {
			t.Errorf("third attempt after %v, want x-amz-retry-after 1.5s", got)
		}
		body, _ := io.ReadAll(resp.Body)
		if !strings.HasSuffix(string(body), "OK") {
			t.Errorf("final body %q was touched", body)
		}
		for i, code := range []int{429, 503} {
			c := f.closers[i]
			if want := 101 + len(http.StatusText(code)); !c.closed || c.read != want {
				t.Errorf("discarded body %d: closed %v, read %d bytes; want drained (%d) and closed", i, c.closed, c.read, want)
			}
		}
	})
}

func TestHintBoundsAndGarbage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRT{script: []func(*http.Request) (*http.Response, error){
			status(503, "Retry-After", "99999999999999999999999"),       // huge: clamped to MaxHint
			status(503, "Retry-After", "-5"),                            // negative: ignored → schedule
			status(503, "Retry-After", "soon"),                          // malformed: ignored
			status(503, "Retry-After", "Fri, 31 Dec 1999 23:59:00 GMT"), // past (the bubble starts in 2000): the schedule
			status(200),
		}}
		p := policy(6)
		p.MaxHint = 3 * time.Second
		tr := &Transport{Next: f, Policy: p}
		req, _ := http.NewRequest("GET", "http://svc.local/", nil)
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		// A hint is a floor over the schedule (10 ms here): a past date is
		// not "at once".
		want := []time.Duration{3 * time.Second, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
		for i, w := range want {
			if got := f.times[i+1].Sub(f.times[i]); got != w {
				t.Errorf("gap %d = %v, want %v", i, got, w)
			}
		}
	})
}

func TestHTTPDateHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		date := time.Now().Add(5 * time.Second).UTC().Format(http.TimeFormat)
		f := &fakeRT{script: []func(*http.Request) (*http.Response, error){status(503, "Retry-After", date), status(200)}}
		tr := &Transport{Next: f, Policy: policy(3)}
		req, _ := http.NewRequest("GET", "http://svc.local/", nil)
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		// HTTP dates have second precision: between 4 and 5 s.
		if got := f.times[1].Sub(f.times[0]); got <= 4*time.Second || got > 5*time.Second {
			t.Errorf("waited %v for an HTTP-date 5s ahead", got)
		}
	})
}

func TestPostNotRetriedByDefault(t *testing.T) {
	f := &fakeRT{script: []func(*http.Request) (*http.Response, error){status(503), status(200)}}
	tr := &Transport{Next: f, Policy: policy(3)}
	req, _ := http.NewRequest("POST", "http://svc.local/orders", strings.NewReader("order"))
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 503 || len(f.bodies) != 1 {
		t.Fatalf("POST: resp %v err %v after %d attempts; want the 503 after one attempt", resp, err, len(f.bodies))
	}
	f2 := &fakeRT{script: []func(*http.Request) (*http.Response, error){netErr(errors.New("connection reset by peer"))}}
	tr.Next = f2
	req, _ = http.NewRequest("POST", "http://svc.local/orders", strings.NewReader("order"))
	_, err = tr.RoundTrip(req)
	if !errors.Is(err, ErrNotIdempotent) || len(f2.bodies) != 1 {
		t.Errorf("POST reset: err %v after %d attempts, want ErrNotIdempotent after 1", err, len(f2.bodies))
	}
	// With an Idempotency-Key, or the opt-in, POST is retried.
	for _, opt := range []func(*http.Request, *Transport){
		func(r *http.Request, _ *Transport) { r.Header.Set("Idempotency-Key", "k1") },
		func(_ *http.Request, tr *Transport) { tr.RetryNonIdempotent = true },
	} {
		f := &fakeRT{script: []func(*http.Request) (*http.Response, error){status(503), status(201)}}
		tr := &Transport{Next: f, Policy: policy(3)}
		req, _ := http.NewRequest("POST", "http://svc.local/orders", strings.NewReader("order"))
		opt(req, tr)
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 201 || len(f.bodies) != 2 || f.bodies[1] != "order" {
			t.Errorf("opted-in POST: resp %v err %v bodies %q", resp, err, f.bodies)
		}
	}
}

func TestBodyReplayAndCallerRequestUntouched(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	f := &fakeRT{script: []func(*http.Request) (*http.Response, error){status(500), netErr(errors.New("read: connection reset by peer")), status(502), status(200)}}
	tr := &Transport{Next: f, Policy: &retry.Policy{MaxAttempts: 5, Backoff: retry.Constant{}}}
	req, _ := http.NewRequest("PUT", "http://svc.local/blob", bytes.NewReader(payload))
	req.Header.Set("X-Trace", "abc")
	before := req.Header.Clone()
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("err %v", err)
	}
	if len(f.bodies) != 4 {
		t.Fatalf("%d attempts", len(f.bodies))
	}
	for i, b := range f.bodies {
		if b != string(payload) {
			t.Errorf("attempt %d carried %d bytes, not the exact payload", i+1, len(b))
		}
	}
	if len(req.Header) != len(before) || req.Header.Get("X-Trace") != "abc" {
		t.Errorf("caller's headers changed: %v", req.Header)
	}
	for i, r := range f.reqs[1:] {
		if r == req {
			t.Errorf("retry %d reused the caller's *http.Request", i+1)
		}
	}
}

func TestBodyWithoutGetBody(t *testing.T) {
	mk := func() *http.Request {
		req, _ := http.NewRequest("PUT", "http://svc.local/blob", nil)
		req.Body = io.NopCloser(strings.NewReader("stream-data")) // no GetBody
		return req
	}
	f := &fakeRT{script: []func(*http.Request) (*http.Response, error){netErr(errors.New("connection reset")), status(200)}}
	_, err := (&Transport{Next: f, Policy: policy(3)}).RoundTrip(mk())
	if !errors.Is(err, ErrBodyNotReplayable) || len(f.bodies) != 1 || !strings.Contains(err.Error(), "GetBody") {
		t.Errorf("err %v after %d attempts; want ErrBodyNotReplayable saying why", err, len(f.bodies))
	}
	// Opting into buffering retries it byte-exactly.
	f = &fakeRT{script: []func(*http.Request) (*http.Response, error){netErr(errors.New("connection reset")), status(200)}}
	resp, err := (&Transport{Next: f, Policy: policy(3), BufferBody: 1 << 20}).RoundTrip(mk())
	if err != nil || resp.StatusCode != 200 || len(f.bodies) != 2 || f.bodies[0] != "stream-data" || f.bodies[1] != "stream-data" {
		t.Errorf("buffered: err %v bodies %q", err, f.bodies)
	}
	// Longer than the buffer: sent once, whole.
	f = &fakeRT{script: []func(*http.Request) (*http.Response, error){status(503), status(200)}}
	resp, err = (&Transport{Next: f, Policy: policy(3), BufferBody: 4}).RoundTrip(mk())
	if err != nil || resp.StatusCode != 503 || len(f.bodies) != 1 || f.bodies[0] != "stream-data" {
		t.Errorf("over the buffer: resp %v err %v bodies %q; want one whole attempt", resp, err, f.bodies)
	}
}

func TestNon5xxNotRetriedAndReturnLast(t *testing.T) {
	f := &fakeRT{script: []func(*http.Request) (*http.Response, error){status(404)}}
	resp, err := (&Transport{Next: f, Policy: policy(3)}).RoundTrip(mustGet())
	if err != nil || resp.StatusCode != 404 || len(f.bodies) != 1 {
		t.Errorf("404: resp %v err %v attempts %d", resp, err, len(f.bodies))
	}
	f = &fakeRT{script: []func(*http.Request) (*http.Response, error){status(503)}}
	_, err = (&Transport{Next: f, Policy: policy(3)}).RoundTrip(mustGet())
	var se *StatusError
	var re *retry.Error
	if !errors.As(err, &se) || se.StatusCode != 503 || !errors.As(err, &re) || re.Attempts != 3 {
		t.Errorf("err %v; want a give-up after 3 attempts wrapping the 503", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error leaks the query string: %v", err)
	}
	for _, c := range f.closers {
		if !c.closed {
			t.Error("a discarded body was not closed")
		}
	}
	f = &fakeRT{script: []func(*http.Request) (*http.Response, error){status(503)}}
	resp, err = (&Transport{Next: f, Policy: policy(3), ReturnLastResponse: true}).RoundTrip(mustGet())
	if err != nil || resp.StatusCode != 503 || len(f.bodies) != 3 {
		t.Fatalf("ReturnLastResponse: resp %v err %v", resp, err)
	}
	if b, _ := io.ReadAll(resp.Body); !strings.HasSuffix(string(b), "Service Unavailable") || len(b) < 100 {
		t.Errorf("last response body was touched: %q", b)
	}
}

func mustGet() *http.Request {
	req, _ := http.NewRequest("GET", "http://svc.local/items?secret=1", nil)
	return req
}

func TestAttemptTimeoutHeadersOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		f := &fakeRT{script: []func(*http.Request) (*http.Response, error){
			func(r *http.Request) (*http.Response, error) { <-r.Context().Done(); return nil, r.Context().Err() },
			status(200),
		}}
		f.script[1] = func(r *http.Request) (*http.Response, error) {
			calls++
			resp, _ := status(200)(r)
			return resp, nil
		}
		p := policy(3)
		p.AttemptTimeout = time.Second
		start := time.Now()
		resp, err := (&Transport{Next: f, Policy: p}).RoundTrip(mustGet())
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("err %v", err)
		}
		if got := time.Since(start); got != time.Second+10*time.Millisecond {
			t.Errorf("took %v, want the 1s attempt timeout plus 10ms", got)
		}
		// The body outlives the attempt timeout: its context is live.
		time.Sleep(5 * time.Second)
		if err := f.reqs[1].Context().Err(); err != nil {
			t.Errorf("final response's context ended before its body was closed: %v", err)
		}
		resp.Body.Close()
		if f.reqs[1].Context().Err() == nil {
			t.Error("closing the body did not release the attempt's context")
		}
	})
}

func TestCallerCancelStopsRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRT{script: []func(*http.Request) (*http.Response, error){status(503, "Retry-After", "10")}}
		ctx, cancel := context.WithCancel(t.Context())
		go func() { time.Sleep(time.Second); cancel() }()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://svc.local/", nil)
		start := time.Now()
		_, err := (&Transport{Next: f, Policy: policy(5)}).RoundTrip(req)
		if !errors.Is(err, context.Canceled) || time.Since(start) != time.Second || len(f.bodies) != 1 {
			t.Errorf("err %v after %v and %d attempts", err, time.Since(start), len(f.bodies))
		}
		if !f.closers[0].closed {
			t.Error("the pending 503 body was not closed on cancel")
		}
	})
}

func TestParsers(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true}, {"120", 2 * time.Minute, true}, {" 3 ", 3 * time.Second, true},
		{"-1", 0, false}, {"1.5", 0, false}, {"", 0, false}, {"abc", 0, false},
		{"99999999999999999999", math.MaxInt64, true},
		{"Wed, 25 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"Wed, 25 Nov 2026 11:00:00 GMT", 0, true},
		{"Wednesday, 25-Nov-26 12:01:00 GMT", time.Minute, true},
	} {
		got, ok := ParseRetryAfter(c.in, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{{"250", 250 * time.Millisecond, true}, {"-3", 0, false}, {"x", 0, false}, {"99999999999999999999", math.MaxInt64, true}} {
		got, ok := ParseAmzRetryAfter(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseAmzRetryAfter(%q) = %v, %v", c.in, got, ok)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"0", "120", "-1", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999999999999999", "1e9", " 7 "} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", s, d, ok)
		}
		d, ok = ParseAmzRetryAfter(s)
		if d < 0 || (!ok && d != 0) {
			t.Fatalf("ParseAmzRetryAfter(%q) = %v, %v", s, d, ok)
		}
	})
}

func TestClassifyHookSeesBodyAndKeepsIt(t *testing.T) {
	ddb := func(r *http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 400, Status: "400 Bad Request", Header: http.Header{}, Request: r,
			Body: io.NopCloser(strings.NewReader(`{"__type":"x#ProvisionedThroughputExceededException"}`))}, nil
	}
	f := &fakeRT{script: []func(*http.Request) (*http.Response, error){ddb, ddb, status(200)}}
	var throttles int
	p := policy(3)
	p.Observer = retry.ObserverFuncs{Retry: func(e retry.RetryEvent) {
		if e.Throttled {
			throttles++
		}
	}}
	tr := &Transport{Next: f, Policy: p, Classify: func(resp *http.Response) retry.Decision {
		b, _ := PeekBody(resp, 1024)
		if strings.Contains(string(b), "ThroughputExceeded") {
			return retry.Throttled
		}
		return retry.Unknown
	}}
	resp, err := tr.RoundTrip(mustGet())
	if err != nil || resp.StatusCode != 200 || throttles != 2 {
		t.Fatalf("resp %v err %v throttles %d", resp, err, throttles)
	}
	// A 400 that is not a throttle is returned with its body whole.
	f = &fakeRT{script: []func(*http.Request) (*http.Response, error){status(400)}}
	tr.Next = f
	resp, err = tr.RoundTrip(mustGet())
	b, _ := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 400 || len(f.bodies) != 1 || !strings.HasSuffix(string(b), "Bad Request") || len(b) < 100 {
		t.Errorf("plain 400: %v %v %q", resp, err, b)
	}
}

func TestAWSThrottle(t *testing.T) {
	mk := func(code int, body string) *http.Response {
		return &http.Response{StatusCode: code, Body: io.NopCloser(strings.NewReader(body))}
	}
	for _, c := range []struct {
		resp *http.Response
		want retry.Decision
	}{
		{mk(400, `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"x"}`), retry.Throttled},
		{mk(400, `{"__type":"ThrottlingException"}`), retry.Throttled},
		{mk(400, `{"__type":"com.amazonaws.dynamodb.v20120810#ValidationException"}`), retry.Stop},
		{mk(400, `not json`), retry.Stop},
		{mk(500, `{"__type":"#ThrottlingException"}`), retry.Unknown},
	} {
		if got := AWSThrottle(c.resp); got != c.want {
			t.Errorf("%d: %v, want %v", c.resp.StatusCode, got, c.want)
		}
		if b, _ := io.ReadAll(c.resp.Body); len(b) == 0 {
			t.Error("the body was not put back")
		}
	}
}

func TestAmzRetryAfterSlack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRT{script: []func(*http.Request) (*http.Response, error){
			status(503, "X-Amz-Retry-After", "60000"), // 60 s: the SDK's rule waits backoff + 5 s
			status(503, "Retry-After", "60"),          // 60 s: only MaxHint bounds it
			status(200),
		}}
		p := policy(5)
		p.MaxHint = 30 * time.Second
		tr := &Transport{Next: f, Policy: p}
		req, _ := http.NewRequest("GET", "http://svc.local/", nil)
		if _, err := tr.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{5*time.Second + 10*time.Millisecond, 30 * time.Second}
		for i, w := range want {
			if got := f.times[i+1].Sub(f.times[i]); got != w {
				t.Errorf("gap %d = %v, want %v", i, got, w)
			}
		}
	})
}

// ctxBody fails reads once its request's context is done, as a real
// transport's body does.
type ctxBody struct {
	ctx context.Context
	r   io.Reader
}

func (b *ctxBody) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	return b.r.Read(p)
}
func (b *ctxBody) Close() error { return nil }

// The attempt timer firing between the headers' arrival and its Stop: the
// response's context is already cancelled, so it must not be handed back
// (its body cannot be read); it is an attempt timeout, and retried.
func TestHeadersAtTheAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 100 * time.Millisecond
		attempts := 0
		next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			attempts++
			if attempts == 1 {
				// The headers arrive just after the timer fired, before
				// RoundTrip returns to Stop it.
				time.Sleep(timeout + time.Nanosecond)
			}
			return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{}, Request: r,
				Body: &ctxBody{ctx: r.Context(), r: strings.NewReader("ok")}}, nil
		})
		p := policy(3)
		p.AttemptTimeout = timeout
		tr := &Transport{Next: next, Policy: p}
		req, _ := http.NewRequest("GET", "http://svc.local/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(body) != "ok" || attempts != 2 {
			t.Errorf("body %q (%v) after %d attempts; want \"ok\" after 2 (the first timed out)", body, err, attempts)
		}
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Rules a mutation once changed without any test failing (go run
// ./tools/dev/cmd/mutate).

func TestRetryAfterSecondsSaturate(t *testing.T) {
	// Above the ≈292 years a Duration holds, but within int64 seconds: the
	// multiplication would overflow without the guard.
	for _, v := range []string{"9999999999999", "9223372036854775807"} {
		if got, ok := ParseRetryAfter(v, time.Now()); !ok || got != math.MaxInt64 {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want the largest Duration", v, got, ok)
		}
	}
}

func TestAmzRetryAfterTakesPrecedence(t *testing.T) {
	h := http.Header{}
	h.Set("Retry-After", "10")
	h.Set("X-Amz-Retry-After", "1500")
	if d, ok := Hint(h, time.Now()); !ok || d != 1500*time.Millisecond {
		t.Errorf("Hint = %v, %v; want x-amz-retry-after's 1.5s over Retry-After's 10s", d, ok)
	}
	h.Set("X-Amz-Retry-After", "garbage")
	if d, ok := Hint(h, time.Now()); !ok || d != 10*time.Second {
		t.Errorf("Hint with a malformed x-amz-retry-after = %v, %v; want Retry-After's 10s", d, ok)
	}
}

// A body of exactly BufferBody bytes is buffered, and replayed.
func TestBufferBodyBoundary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeRT{script: []func(*http.Request) (*http.Response, error){status(503), status(200)}}
		req, _ := http.NewRequest("PUT", "http://svc.local/", io.NopCloser(strings.NewReader("hello")))
		req.GetBody = nil
		resp, err := (&Transport{Next: f, Policy: policy(3), BufferBody: 5}).RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := strings.Join(f.bodies, ","); got != "hello,hello" {
			t.Errorf("bodies sent %q, want the 5-byte body twice", got)
		}
	})
}

// A request that cannot be retried (POST without a key) takes nothing from
// the budget: it is sent once, as a plain client would.
func TestNoBudgetForARequestThatCannotBeRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := retry.NewBudget(retry.BudgetConfig{Capacity: 10, RetryCost: 1, FailureCost: 1})
		if err != nil {
			t.Fatal(err)
		}
		p := policy(3)
		p.Budget = b
		f := &fakeRT{script: []func(*http.Request) (*http.Response, error){status(503)}}
		req, _ := http.NewRequest("POST", "http://svc.local/", strings.NewReader("x"))
		resp, err := (&Transport{Next: f, Policy: p}).RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		if got := b.Tokens(); got != 10 || len(f.bodies) != 1 {
			t.Errorf("budget %v after %d attempts, want 10 after 1", got, len(f.bodies))
		}
	})
}

// When no attempt is made (the context is already done), the request body
// is still closed, as http.RoundTripper requires.
func TestBodyClosedWhenNoAttempt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	body := &trackBody{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequestWithContext(ctx, "PUT", "http://svc.local/", body)
	req.GetBody = nil
	f := &fakeRT{script: []func(*http.Request) (*http.Response, error){status(200)}}
	if _, err := (&Transport{Next: f, Policy: policy(3)}).RoundTrip(req); err == nil {
		t.Fatal("a request with a cancelled context succeeded")
	}
	if len(f.bodies) != 0 || !body.closed {
		t.Errorf("%d attempts, body closed %v; want none and closed", len(f.bodies), body.closed)
	}
}

// An attempt cut by the attempt timeout says so in the error.
func TestAttemptTimeoutErrorSaysSo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			<-r.Context().Done()
			return nil, r.Context().Err()
		})
		p := policy(2)
		p.AttemptTimeout = 50 * time.Millisecond
		req, _ := http.NewRequest("GET", "http://svc.local/", nil)
		_, err := (&Transport{Next: next, Policy: p}).RoundTrip(req)
		if err == nil || !strings.Contains(err.Error(), "httpretry: attempt timed out after 50ms") {
			t.Errorf("err %v, want it to say the attempt timed out after 50ms", err)
		}
	})
}

// TestAttemptNumberInEachAttemptsContext: what a RoundTripper beneath the
// Transport sees: 1, 2, 3 for the first attempt and two retries; 1 outside.
func TestAttemptNumberInEachAttemptsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []int
		next := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			seen = append(seen, Attempt(r.Context()))
			status := http.StatusServiceUnavailable
			if len(seen) == 3 {
				status = http.StatusOK
			}
			return &http.Response{StatusCode: status, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
		})
		tr := &Transport{Next: next, Policy: &retry.Policy{MaxAttempts: 5, Backoff: retry.Constant{Interval: time.Millisecond}}}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://example.test/", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if len(seen) != 3 || seen[0] != 1 || seen[1] != 2 || seen[2] != 3 {
			t.Errorf("attempt numbers %v, want [1 2 3]", seen)
		}
		if n := Attempt(t.Context()); n != 1 {
			t.Errorf("Attempt outside a Transport = %d, want 1", n)
		}
	})
}
