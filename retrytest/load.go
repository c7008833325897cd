package retrytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// LoadConfig describes a load run: Clients goroutines write Items distinct
// items to URL, each writer one item at a time, through a client whose
// transport is built by NewTransport around a counting base transport.
type LoadConfig struct {
	URL     string
	Clients int
	Items   int
	// NewTransport wraps next (which counts attempts) with the retry
	// strategy under test. nil sends each item once.
	NewTransport func(next http.RoundTripper) http.RoundTripper
	// Method of each write; "" means PUT (idempotent, so retried by default).
	Method string
	// NewWriter, if set, replaces the built-in write (an HTTP request
	// through NewTransport's client): it is called once with the counting
	// base transport and returns how to write item i, e.g. with an SDK
	// client. NewTransport and Method are then unused.
	NewWriter func(base http.RoundTripper) func(ctx context.Context, i int) error
	// Timeout bounds the whole run; 0 means 5 minutes. Writes still
	// pending then count as failures.
	Timeout time.Duration
	// Progress, if set, is called after each item is done (from many
	// goroutines).
	Progress func(done, failed int)
}

// LoadResult is what a load run measured.
type LoadResult struct {
	Wall     time.Duration
	Attempts int // requests sent, retries included
	Failures int // items not written
	P50, P99 time.Duration
	// Errors counts the failures by message (at most 10 distinct).
	Errors map[string]int
	// GoroutinesLeft is how many more goroutines run after the load (idle
	// connections closed, 2 s to settle) than before it.
	GoroutinesLeft int
}

type countingRT struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *countingRT) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(r)
}

// RunLoad runs the load and returns its measures. It stops by itself: after
// Items writes, or at Timeout.
func RunLoad(ctx context.Context, cfg LoadConfig) (LoadResult, error) {
	if cfg.Clients <= 0 || cfg.Items <= 0 || cfg.URL == "" {
		return LoadResult{}, fmt.Errorf("retrytest: LoadConfig: clients=%d items=%d url=%q: need clients > 0, items > 0 and a URL", cfg.Clients, cfg.Items, cfg.URL)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	base := &http.Transport{MaxIdleConns: cfg.Clients, MaxIdleConnsPerHost: cfg.Clients, IdleConnTimeout: 30 * time.Second}
	defer base.CloseIdleConnections()
	counter := &countingRT{next: base}
	writeItem := func(ctx context.Context, i int) error { return nil }
	if cfg.NewWriter != nil {
		writeItem = cfg.NewWriter(counter)
	} else {
		var rt http.RoundTripper = counter
		if cfg.NewTransport != nil {
			rt = cfg.NewTransport(counter)
		}
		client := &http.Client{Transport: rt}
		method := cfg.Method
		if method == "" {
			method = http.MethodPut
		}
		writeItem = func(ctx context.Context, i int) error { return write(ctx, client, method, cfg.URL, i) }
	}

	var next, done, failed atomic.Int64
	var errMu sync.Mutex
	errs := map[string]int{}
	lat := make([]time.Duration, cfg.Items)
	start := time.Now()
	var wg sync.WaitGroup
	for range cfg.Clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.Items || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := writeItem(ctx, i)
				lat[i] = time.Since(t0)
				if err != nil {
					failed.Add(1)
					errMu.Lock()
					if _, seen := errs[err.Error()]; seen || len(errs) < 10 {
						errs[err.Error()]++
					}
					errMu.Unlock()
				}
				d := done.Add(1)
				if cfg.Progress != nil {
					cfg.Progress(int(d), int(failed.Load()))
				}
			}
		})
	}
	wg.Wait()
	res := LoadResult{Wall: time.Since(start), Attempts: int(counter.n.Load()), Errors: errs}
	res.Failures = int(failed.Load()) + cfg.Items - int(done.Load())
	slices.Sort(lat)
	res.P50, res.P99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
	base.CloseIdleConnections()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && runtime.NumGoroutine() > before; {
		time.Sleep(20 * time.Millisecond)
	}
	res.GoroutinesLeft = max(0, runtime.NumGoroutine()-before)
	if err := ctx.Err(); err != nil && errors.Is(err, context.DeadlineExceeded) {
		return res, fmt.Errorf("retrytest: load run stopped after %v with %d of %d items done", timeout, done.Load(), cfg.Items)
	}
	return res, nil
}

func write(ctx context.Context, c *http.Client, method, url string, i int) error {
	body := []byte(fmt.Sprintf(`{"TableName":"items","Item":{"id":{"S":"item-%06d"},"n":{"N":"%d"}}}`, i, i))
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	return nil
}
