package httpretry_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/jittered/retry"
	"github.com/jittered/retry/httpretry"
)

func Example() {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if calls < 3 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		fmt.Fprint(w, "done")
	}))
	defer srv.Close()

	client := httpretry.NewClient(&retry.Policy{MaxAttempts: 5, Backoff: retry.Exponential{Base: time.Millisecond}})
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.StatusCode, "after", calls, "attempts")
	// Output: 200 after 3 attempts
}
