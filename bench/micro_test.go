package bench

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/go-retryablehttp"

	ours "github.com/jittered/retry"
	"github.com/jittered/retry/httpretry"
)

// BenchmarkSuccess: the first attempt succeeds. Each library's loop is
// built as its documentation suggests for repeated use (see Lib.Config).
//
//	cd bench && go test -run '^$' -bench 'Success|ThreeFailures' -benchmem -count 10 | tee micro.txt
func BenchmarkSuccess(b *testing.B) {
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	for _, lib := range Libs() {
		do := lib.NewDoer(Shared)
		b.Run(lib.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := do(ctx, op); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkThreeFailures: three failures, then success, with zero delays.
func BenchmarkThreeFailures(b *testing.B) {
	ctx := context.Background()
	zero := Common{Base: 0, Cap: 0, Attempts: 4}
	for _, lib := range Libs() {
		do := lib.NewDoer(zero)
		b.Run(lib.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				if err := do(ctx, func(context.Context) error {
					if n++; n <= 3 {
						return errRetryable
					}
					return nil
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// okRT answers 200 at once, in memory.
type okRT struct{}

func (okRT) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}")), Request: r}, nil
}

// BenchmarkHTTPSuccess: one GET through each HTTP retry client over an
// in-memory transport that answers 200: the cost the retrying layer adds.
func BenchmarkHTTPSuccess(b *testing.B) {
	req, _ := http.NewRequest("GET", "http://svc.local/item", nil)
	plain := &http.Client{Transport: okRT{}}
	b.Run("plain http.Client", func(b *testing.B) {
		loopGET(b, func() (*http.Response, error) { return plain.Do(req) })
	})
	ourClient := &http.Client{Transport: &httpretry.Transport{Next: okRT{}, Policy: &ours.Policy{MaxAttempts: Shared.Attempts}}}
	b.Run("jittered/retry httpretry", func(b *testing.B) {
		loopGET(b, func() (*http.Response, error) { return ourClient.Do(req) })
	})
	rc := retryablehttp.NewClient()
	rc.HTTPClient = &http.Client{Transport: okRT{}}
	rc.Logger = nil
	rc.RetryWaitMin, rc.RetryWaitMax, rc.RetryMax = Shared.Base, Shared.Cap, Shared.Attempts-1
	rreq, _ := retryablehttp.FromRequest(req)
	b.Run("hashicorp/go-retryablehttp", func(b *testing.B) {
		loopGET(b, func() (*http.Response, error) { return rc.Do(rreq) })
	})
}

func loopGET(b *testing.B, get func() (*http.Response, error)) {
	b.ReportAllocs()
	for b.Loop() {
		resp, err := get()
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
	}
}

// TestAdaptersRetry checks each adapter really retries and really stops.
func TestAdaptersRetry(t *testing.T) {
	ctx := context.Background()
	for _, lib := range Libs() {
		do := lib.NewDoer(Common{Base: 0, Cap: 0, Attempts: 4})
		n := 0
		err := do(ctx, func(context.Context) error {
			if n++; n <= 3 {
				return errRetryable
			}
			return nil
		})
		if err != nil || n != 4 {
			t.Errorf("%s: %d calls, err %v; want success on the 4th", lib.Name, n, err)
		}
		n = 0
		if err := do(ctx, func(context.Context) error { n++; return errRetryable }); err == nil || n != 4 {
			t.Errorf("%s: %d calls, err %v; want 4 attempts then an error", lib.Name, n, err)
		}
	}
}
