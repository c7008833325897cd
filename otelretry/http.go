package otelretry

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/jittered/retry/httpretry"
)

// ResendCountKey is the HTTP semantic conventions' attribute for the
// ordinal number of a request resend (0 or absent for the original).
const ResendCountKey = attribute.Key("http.request.resend_count")

// ResendCount wraps the RoundTripper beneath HTTP instrumentation, itself
// beneath an httpretry.Transport, so that each resent attempt's client
// span carries http.request.resend_count, as OpenTelemetry's HTTP semantic
// conventions ask (the instrumentation alone cannot know an attempt is a
// resend):
//
//	client := &http.Client{Transport: &httpretry.Transport{
//		Policy: policy,
//		Next:   otelhttp.NewTransport(otelretry.ResendCount(http.DefaultTransport)),
//	}}
//
// It sets the attribute on the span in the request's context when
// httpretry.Attempt says the request is a retry; next nil means
// http.DefaultTransport.
func ResendCount(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return resendCount{next}
}

type resendCount struct{ next http.RoundTripper }

func (r resendCount) RoundTrip(req *http.Request) (*http.Response, error) {
	if n := httpretry.Attempt(req.Context()); n > 1 {
		if span := trace.SpanFromContext(req.Context()); span.IsRecording() {
			span.SetAttributes(ResendCountKey.Int(n - 1))
		}
	}
	return r.next.RoundTrip(req)
}
