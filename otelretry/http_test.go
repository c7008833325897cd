package otelretry_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/jittered/retry"
	"github.com/jittered/retry/httpretry"
	"github.com/jittered/retry/otelretry"
)

// failTwice serves on loopback: status to the first two requests, 200 after.
func failTwice(t *testing.T, status int) *httptest.Server {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) <= 2 {
			w.WriteHeader(status)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestThroughHTTPRetry: the one-line wiring into httpretry, over real HTTP
// on loopback: a server answers 429 twice, then 200; the request's span
// gets the retry events and the metrics count the throttles.
func TestThroughHTTPRetry(t *testing.T) {
	srv := failTwice(t, http.StatusTooManyRequests)
	r := newRig(t)
	obs, err := otelretry.New(otelretry.WithMeterProvider(r.mp), otelretry.WithOperation("GET /item"))
	if err != nil {
		t.Fatal(err)
	}
	client := httpretry.NewClient(&retry.Policy{MaxAttempts: 5, Backoff: retry.Constant{Interval: time.Millisecond}, Observer: obs})

	ctx, span := r.tp.Tracer("test").Start(t.Context(), "GET /item")
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/item", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	span.End()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200 after two 429s", resp.StatusCode)
	}
	d := r.collect(t)
	opAttr := otelretry.OperationKey.String("GET /item")
	if c := counter(t, d, "retry.retries", opAttr, otelretry.KindKey.String("throttle")); c != 2 {
		t.Errorf("retry.retries{throttle} = %d, want 2", c)
	}
	if cnt, sum := histogram[int64](t, d, "retry.call.attempts", opAttr, otelretry.OutcomeKey.String("success")); cnt != 1 || sum != 3 {
		t.Errorf("retry.call.attempts: %d calls, %d attempts; want 1 call of 3", cnt, sum)
	}
	ev := r.spans.GetSpans()[0].Events
	if len(ev) != 2 {
		t.Fatalf("span events %+v, want 2", ev)
	}
	set := attribute.NewSet(ev[1].Attributes...)
	if v, _ := set.Value(otelretry.ErrorTypeKey); v.AsString() != "*httpretry.StatusError" {
		t.Errorf("error.type %q, want *httpretry.StatusError", v.AsString())
	}
}

// spanPerAttempt stands for HTTP instrumentation (otelhttp's Transport):
// a client span per request, in the context handed to next.
type spanPerAttempt struct {
	tracer trace.Tracer
	next   http.RoundTripper
}

func (s spanPerAttempt) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, span := s.tracer.Start(req.Context(), "HTTP "+req.Method, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	return s.next.RoundTrip(req.WithContext(ctx))
}

// TestResendCountOnEachAttemptsSpan: three attempts through httpretry and
// an instrumentation span each: the first carries no resend count, the
// next 1 and 2, as the HTTP semantic conventions ask.
func TestResendCountOnEachAttemptsSpan(t *testing.T) {
	srv := failTwice(t, http.StatusServiceUnavailable)
	r := newRig(t)
	client := &http.Client{Transport: &httpretry.Transport{
		Policy: &retry.Policy{MaxAttempts: 5, Backoff: retry.Constant{Interval: time.Millisecond}},
		Next:   spanPerAttempt{r.tp.Tracer("http"), otelretry.ResendCount(nil)},
	}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	spans := r.spans.GetSpans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want one per attempt (3)", len(spans))
	}
	for i, s := range spans {
		set := attribute.NewSet(s.Attributes...)
		v, ok := set.Value(otelretry.ResendCountKey)
		switch {
		case i == 0 && ok:
			t.Errorf("the first attempt's span has http.request.resend_count = %v", v.AsInt64())
		case i > 0 && (!ok || v.AsInt64() != int64(i)):
			t.Errorf("attempt %d's span: http.request.resend_count = %v (set: %v), want %d", i+1, v.AsInt64(), ok, i)
		}
	}
}
