package httpretry_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jittered/retry"
	"github.com/jittered/retry/httpretry"
)

// Over real HTTP on 127.0.0.1: a server answering 503 with "Retry-After: 0"
// or a date in the past gets no more attempts than the policy's backoff
// allows in the same time. With a 50 ms base, no jitter and MaxElapsed
// 200 ms, that is 3 attempts (at 0, 50 and 150 ms; the next, at 350 ms,
// would pass MaxElapsed). The old rule (the hint replaces the backoff) let
// such a server receive 6,336 requests in 200 ms.
func TestRetryAfterZeroOverHTTPIsNoStorm(t *testing.T) {
	for _, value := range []string{"0", "Fri, 31 Dec 1999 23:59:59 GMT"} {
		t.Run(value, func(t *testing.T) {
			var hits atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.Header().Set("Retry-After", value)
				w.WriteHeader(http.StatusServiceUnavailable)
			}))
			defer srv.Close()
			p := &retry.Policy{
				MaxAttempts: retry.Unlimited,
				Backoff:     retry.Exponential{Base: 50 * time.Millisecond},
				Jitter:      retry.NoJitter,
				MaxElapsed:  200 * time.Millisecond,
			}
			client := &http.Client{Transport: &httpretry.Transport{Policy: p}}
			start := time.Now()
			resp, err := client.Get(srv.URL)
			if err == nil {
				resp.Body.Close()
				t.Fatal("a request to a server that only answers 503 succeeded")
			}
			if !errors.Is(err, retry.ErrMaxElapsed) {
				t.Errorf("err %v, want ErrMaxElapsed", err)
			}
			if n := hits.Load(); n != 3 {
				t.Errorf("the server got %d requests in %v, want 3 (0, 50, 150 ms)", n, time.Since(start).Round(time.Millisecond))
			}
		})
	}
}
