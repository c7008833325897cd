// Package retrytest is a throttling, fault-injecting HTTP service to retry
// against, in tests (as net/http/httptest is used), in benchmarks and as
// the retry command's "serve": capacity as a token bucket (global or per
// key), DynamoDB-shaped or 429/503 throttle answers with hints, injected
// 5xx, resets, latency and outages, a reverse-proxy mode in front of a real
// service, and per-100 ms counters.
package retrytest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// CountersPath is where a Server serves its counters as JSON.
const CountersPath = "/_retrytest/counters"

// upstreamFailedKey marks, in a proxied request's context, a *bool set
// when the upstream did not answer.
type upstreamFailedKey struct{}

// Interval is the width of a counters bucket.
const Interval = 100 * time.Millisecond

// Counts are the outcomes of requests.
type Counts struct {
	Accepted  int `json:"accepted"`
	Throttled int `json:"throttled"`
	Faulted   int `json:"faulted"`
	// Upstream counts requests let through that the upstream did not
	// answer (proxy mode: connection refused, reset, timeout — answered
	// 502 by the Server); they are not in Accepted.
	Upstream int `json:"upstream"`
}

// Counters are a Server's counts per Interval over the last
// Config.CounterWindow, and in all since it started.
type Counters struct {
	Interval time.Duration `json:"interval_ns"`
	// First is the index, counted in Intervals since the start, of
	// Buckets[0]: older buckets have been dropped.
	First   int      `json:"first"`
	Buckets []Counts `json:"buckets"`
	Total   Counts   `json:"total"`
}

// DefaultCounterWindow is Config.CounterWindow's default: ten minutes of
// 100 ms buckets (6000 of them, about 200 KB).
const DefaultCounterWindow = 10 * time.Minute

// Request is what a Server recorded of one request (Config.Record).
type Request struct {
	Method, Path string
	BodySHA256   string
	Outcome      string // "accepted", "throttled" or a fault
	At           time.Duration
}

// Server is a running service. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, http://127.0.0.1:port.
	URL string

	cfg               Config
	srv               *http.Server
	ln                net.Listener
	start             time.Time
	proxy             *httputil.ReverseProxy
	upstreamTransport *http.Transport
	handler           http.Handler
	global            *rate.Limiter
	keyed             sync.Map // string → *rate.Limiter
	n                 atomic.Int64
	reqID             atomic.Int64

	mu      sync.Mutex
	rng     *rand.Rand
	buckets []Counts
	first   int // index of buckets[0], in Intervals since the start
	total   Counts
	records []Request
	conns   sync.WaitGroup
}

// Start validates cfg, listens and serves until Close.
func Start(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	addr := cfg.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s := &Server{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5bd1e995)), handler: cfg.Handler}
	if cfg.Rate > 0 {
		s.global = rate.NewLimiter(rate.Limit(cfg.Rate), s.burst())
	}
	if cfg.Upstream != "" {
		u, _ := url.Parse(cfg.Upstream)
		s.upstreamTransport = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}
		s.proxy = &httputil.ReverseProxy{
			Transport: s.upstreamTransport,
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(u)
				pr.Out.Host = pr.In.Host // keep the signed Host (AWS SigV4 signs it)
				if pr.In.Context().Value(unprocessedKey{}) != nil {
					// The answer will be rewritten: ask for it uncompressed.
					pr.Out.Header.Del("Accept-Encoding")
				}
			},
			ModifyResponse: mergeUnprocessed,
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				if p, ok := r.Context().Value(upstreamFailedKey{}).(*bool); ok {
					*p = true // counted apart from accepted answers
				}
				http.Error(w, "retrytest: upstream: "+err.Error(), http.StatusBadGateway)
			},
		}
	}
	if s.handler == nil && s.proxy == nil {
		s.handler = http.HandlerFunc(emptyJSON)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("retrytest: listen on %s: %w", addr, err)
	}
	s.ln = ln
	s.URL = "http://" + ln.Addr().String()
	s.start = time.Now()
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

func (s *Server) burst() int {
	if s.cfg.Burst > 0 {
		return s.cfg.Burst
	}
	return max(1, int(s.cfg.Rate/10))
}

// Close stops the server and waits for its handlers to return.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	s.conns.Wait()
	if s.upstreamTransport != nil {
		s.upstreamTransport.CloseIdleConnections()
	}
	return err
}

// Counters returns a copy of the counters so far.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Counters{Interval: Interval, First: s.first, Buckets: append([]Counts(nil), s.buckets...), Total: s.total}
}

// window is how many buckets are kept.
func (s *Server) window() int {
	w := s.cfg.CounterWindow
	if w == 0 {
		w = DefaultCounterWindow
	}
	return max(1, int(w/Interval))
}

// Requests returns what was recorded (Config.Record).
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.records...)
}

func (s *Server) count(now time.Time, outcome string, r *http.Request, body []byte) {
	at := now.Sub(s.start)
	s.mu.Lock()
	defer s.mu.Unlock()
	i := int(at/Interval) - s.first
	if i < 0 {
		i = 0 // admitted before the window moved on: counted in its first bucket
	}
	for len(s.buckets) <= i {
		s.buckets = append(s.buckets, Counts{})
	}
	if w := s.window(); len(s.buckets) >= 2*w {
		// Keep the last w buckets; the copy happens once per w Intervals.
		drop := len(s.buckets) - w
		s.buckets = append(s.buckets[:0], s.buckets[drop:]...)
		s.first += drop
		i -= drop
	}
	switch outcome {
	case "upstream":
		s.buckets[i].Upstream++
		s.total.Upstream++
	case "accepted":
		s.buckets[i].Accepted++
		s.total.Accepted++
	case "throttled":
		s.buckets[i].Throttled++
		s.total.Throttled++
	default:
		s.buckets[i].Faulted++
		s.total.Faulted++
	}
	if s.cfg.Record {
		sum := sha256.Sum256(body)
		s.records = append(s.records, Request{Method: r.Method, Path: r.URL.Path, BodySHA256: hex.EncodeToString(sum[:]), Outcome: outcome, At: at})
	}
}

func (s *Server) coin() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64()
}

// ServeHTTP applies, in order: the counters endpoint, the body limit, the
// script, outages, capacity, fault probabilities and latency; then answers
// or forwards.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.conns.Add(1)
	defer s.conns.Done()
	if r.URL.Path == CountersPath {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s.Counters())
		return
	}
	limit := s.cfg.MaxBody
	if limit == 0 {
		limit = 16 << 20
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return // the client went away
	}
	if int64(len(body)) > limit {
		http.Error(w, "retrytest: request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	n := int(s.n.Add(1)) - 1
	now := time.Now()

	fault := FaultNone
	scripted := n < len(s.cfg.Script)
	switch {
	case scripted:
		fault = s.cfg.Script[n]
	case s.inOutage(now):
		fault = Fault503
	case !s.allow(now, r, body):
		fault = FaultThrottle
	default:
		fault = s.pickFault()
	}
	if d := s.latency(); d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	switch fault {
	case FaultNone:
		if s.proxy == nil {
			s.count(now, "accepted", r, body)
			s.pass(w, r, body)
			break
		}
		var failed bool
		s.pass(w, r.WithContext(context.WithValue(r.Context(), upstreamFailedKey{}, &failed)), body)
		if failed {
			s.count(now, "upstream", r, body)
		} else {
			s.count(now, "accepted", r, body)
		}
	case FaultThrottle:
		s.count(now, "throttled", r, body)
		s.throttle(w)
	case FaultReset:
		s.count(now, "reset", r, body)
		reset(w)
	case FaultResetAfter:
		s.count(now, "reset-after", r, body)
		s.pass(discard{header: http.Header{}}, r, body)
		reset(w)
	default:
		s.count(now, "fault", r, body)
		s.fail(w, fault)
	}
}

func (s *Server) inOutage(now time.Time) bool {
	at := now.Sub(s.start)
	for _, o := range s.cfg.Outages {
		if at >= o.From && at < o.To {
			return true
		}
	}
	return false
}

func (s *Server) allow(now time.Time, r *http.Request, body []byte) bool {
	if s.cfg.Rate <= 0 {
		return true
	}
	if s.cfg.Key == nil {
		return s.global.AllowN(now, 1)
	}
	k := s.cfg.Key(r, body)
	l, ok := s.keyed.Load(k)
	if !ok {
		l, _ = s.keyed.LoadOrStore(k, rate.NewLimiter(rate.Limit(s.cfg.Rate), s.burst()))
	}
	return l.(*rate.Limiter).AllowN(now, 1)
}

func (s *Server) pickFault() Fault {
	c := s.cfg
	if c.P500+c.P502+c.P503+c.P504+c.PReset+c.PResetAfter == 0 {
		return FaultNone
	}
	u := s.coin()
	for _, f := range []struct {
		p float64
		f Fault
	}{{c.P500, Fault500}, {c.P502, Fault502}, {c.P503, Fault503}, {c.P504, Fault504}, {c.PReset, FaultReset}, {c.PResetAfter, FaultResetAfter}} {
		if u < f.p {
			return f.f
		}
		u -= f.p
	}
	return FaultNone
}

func (s *Server) latency() time.Duration {
	d := s.cfg.Latency
	if s.cfg.Jitter > 0 {
		d += time.Duration(s.coin() * float64(s.cfg.Jitter))
	}
	return d
}

func (s *Server) pass(w http.ResponseWriter, r *http.Request, body []byte) {
	if s.cfg.PartialBatch > 0 && r.Header.Get("X-Amz-Target") == "DynamoDB_20120810.BatchWriteItem" && s.coin() < s.cfg.PartialBatch {
		if kept, rest, ok := splitBatch(body); ok {
			body = kept
			r = r.WithContext(context.WithValue(r.Context(), unprocessedKey{}, rest))
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if s.proxy != nil {
		s.proxy.ServeHTTP(w, r)
		return
	}
	s.handler.ServeHTTP(w, r)
}

const (
	throttleBody = `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API."}`
	internalBody = `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error (injected by retrytest)"}`
)

func (s *Server) throttle(w http.ResponseWriter) {
	h := w.Header()
	if s.cfg.AmzRetryAfter > 0 {
		h.Set("X-Amz-Retry-After", strconv.FormatInt(s.cfg.AmzRetryAfter.Milliseconds(), 10))
	}
	switch s.cfg.Shape {
	case DynamoDB:
		s.amzJSON(w, http.StatusBadRequest, throttleBody)
	case TooManyRequests:
		s.retryAfter(h)
		http.Error(w, "retrytest: too many requests", http.StatusTooManyRequests)
	case Unavailable:
		s.retryAfter(h)
		http.Error(w, "retrytest: service unavailable (throttled)", http.StatusServiceUnavailable)
	}
}

func (s *Server) retryAfter(h http.Header) {
	if s.cfg.RetryAfter <= 0 {
		return
	}
	if s.cfg.RetryAfterDate {
		h.Set("Retry-After", time.Now().Add(s.cfg.RetryAfter).UTC().Format(http.TimeFormat))
		return
	}
	secs := int64((s.cfg.RetryAfter + time.Second - 1) / time.Second)
	h.Set("Retry-After", strconv.FormatInt(secs, 10))
}

func (s *Server) fail(w http.ResponseWriter, f Fault) {
	code := map[Fault]int{Fault500: 500, Fault502: 502, Fault503: 503, Fault504: 504}[f]
	if code == 503 {
		s.retryAfter(w.Header())
	}
	if s.cfg.Shape == DynamoDB && code == 500 {
		s.amzJSON(w, code, internalBody)
		return
	}
	http.Error(w, fmt.Sprintf("retrytest: injected %d", code), code)
}

func (s *Server) amzJSON(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-Requestid", fmt.Sprintf("retrytest-%d", s.reqID.Add(1)))
	h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(body))), 10))
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	io.WriteString(w, body)
}

func emptyJSON(w http.ResponseWriter, r *http.Request) {
	const body = "{}"
	h := w.Header()
	h.Set("Content-Type", "application/x-amz-json-1.0")
	h.Set("X-Amzn-Requestid", "retrytest")
	h.Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(body))), 10))
	sum := sha256.Sum256(mustRead(r.Body))
	h.Set("X-Body-Sha256", hex.EncodeToString(sum[:]))
	io.WriteString(w, body)
}

func mustRead(r io.Reader) []byte {
	b, _ := io.ReadAll(r)
	return b
}

// reset closes the client's connection with a TCP RST.
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// DynamoDBTable keys capacity by the TableName of a DynamoDB JSON request.
func DynamoDBTable(_ *http.Request, body []byte) string {
	var v struct{ TableName string }
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.TableName
}

type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(p []byte) (int, error) { return len(p), nil }
func (d discard) WriteHeader(int)             {}

// FetchCounters reads a Server's counters over HTTP from baseURL.
func FetchCounters(ctx context.Context, client *http.Client, baseURL string) (Counters, error) {
	var c Counters
	req, err := http.NewRequestWithContext(ctx, "GET", baseURL+CountersPath, nil)
	if err != nil {
		return c, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return c, errors.New("retrytest: counters: " + resp.Status)
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&c)
	return c, err
}
