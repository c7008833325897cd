package retrytest_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jittered/retry"
	"github.com/jittered/retry/httpretry"
	"github.com/jittered/retry/retrytest"
)

func fastPolicy(attempts int) *retry.Policy {
	return &retry.Policy{MaxAttempts: attempts, Backoff: retry.Exponential{Base: time.Millisecond, Cap: 5 * time.Millisecond}}
}

// TestEveryAttemptCarriesTheExactBody: the server hashes each attempt's
// body; every attempt — throttled, failed, reset or accepted — carried the
// caller's exact bytes.
func TestEveryAttemptCarriesTheExactBody(t *testing.T) {
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	want := hex.EncodeToString(sum[:])
	s := start(t, retrytest.Config{Record: true, Shape: retrytest.TooManyRequests, Script: []retrytest.Fault{
		retrytest.Fault500, retrytest.FaultThrottle, retrytest.FaultReset, retrytest.Fault503, retrytest.FaultNone,
	}})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: &httpretry.Transport{Next: tr, Policy: fastPolicy(6)}}
	req, _ := http.NewRequest("PUT", s.URL+"/blob", bytes.NewReader(payload))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := s.Requests()
	if resp.StatusCode != 200 || len(got) != 5 {
		t.Fatalf("status %d after %d attempts, want 200 after 5", resp.StatusCode, len(got))
	}
	for i, r := range got {
		if r.BodySHA256 != want {
			t.Errorf("attempt %d (%s): body hash %s, want %s", i+1, r.Outcome, r.BodySHA256[:12], want[:12])
		}
	}
}

func TestPostNotRetriedOverTheWire(t *testing.T) {
	s := start(t, retrytest.Config{Record: true, Script: []retrytest.Fault{retrytest.Fault503, retrytest.FaultNone}})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: &httpretry.Transport{Next: tr, Policy: fastPolicy(3)}}
	resp, err := c.Post(s.URL, "text/plain", bytes.NewReader([]byte("order")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || len(s.Requests()) != 1 {
		t.Errorf("POST: %d after %d requests; want the 503 after one", resp.StatusCode, len(s.Requests()))
	}
}

func TestRetryAfterOverTheWire(t *testing.T) {
	s := start(t, retrytest.Config{Shape: retrytest.TooManyRequests, RetryAfter: time.Second, Script: []retrytest.Fault{retrytest.FaultThrottle}})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	var slept time.Duration
	p := fastPolicy(3)
	p.HintSpread = retry.NoSpread
	p.Observer = retry.ObserverFuncs{Retry: func(e retry.RetryEvent) { slept = e.Delay }}
	c := &http.Client{Transport: &httpretry.Transport{Next: tr, Policy: p}}
	resp, err := c.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Outcome, not duration: the loop chose the server's hint.
	if resp.StatusCode != 200 || slept != time.Second {
		t.Errorf("status %d, slept %v; want 200 after obeying Retry-After: 1", resp.StatusCode, slept)
	}
}

func TestGiveUpErrorOverTheWire(t *testing.T) {
	s := start(t, retrytest.Config{Outages: []retrytest.Window{{To: time.Hour}}})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: &httpretry.Transport{Next: tr, Policy: fastPolicy(3)}}
	_, err := c.Get(s.URL)
	var re *retry.Error
	var se *httpretry.StatusError
	if !errors.As(err, &re) || re.Attempts != 3 || !errors.As(err, &se) || se.StatusCode != 503 {
		t.Errorf("err %v", err)
	}
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count file descriptors here: %v", err)
	}
	return len(ents)
}

// TestNoLeaksAfter10000RetriedRequests: goroutines and file descriptors are
// the same before and after 10,000 requests that each met retries
// (throttles, 5xx and resets), once idle connections are closed.
func TestNoLeaksAfter10000RetriedRequests(t *testing.T) {
	s := start(t, retrytest.Config{Shape: retrytest.TooManyRequests, P500: 0.2, P503: 0.2, PReset: 0.05, Seed: 3})
	fds, gs := openFDs(t), runtime.NumGoroutine()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	c := &http.Client{Transport: &httpretry.Transport{Next: tr, Policy: &retry.Policy{MaxAttempts: 25, Backoff: retry.Constant{}}}} // P(25 faults in a row) = 0.45²⁵ ≈ 2e-9
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < 10000; i += 16 {
				resp, err := c.Get(s.URL)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	tot := s.Counters().Total
	if failed > 0 || tot.Accepted != 10000 || tot.Faulted < 3000 {
		t.Errorf("failed %d; server counts %+v", failed, tot)
	}
	tr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && (openFDs(t) > fds || runtime.NumGoroutine() > gs) {
		time.Sleep(20 * time.Millisecond)
	}
	if d := openFDs(t) - fds; d > 0 {
		t.Errorf("%d file descriptors leaked", d)
	}
	if d := runtime.NumGoroutine() - gs; d > 0 {
		t.Errorf("%d goroutines leaked", d)
	}
}
