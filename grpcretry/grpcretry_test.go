package grpcretry_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/jittered/retry"
	"github.com/jittered/retry/grpcretry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// step is one scripted answer of the server: an error (nil: success),
// trailers, a wait before answering, and for Watch how many messages to
// send before the error.
type step struct {
	err     error
	trailer metadata.MD
	sleep   time.Duration
	msgs    int
}

// server is a real gRPC server on 127.0.0.1 (TCP) answering the health
// service from a script, recording what each call carried.
type server struct {
	healthpb.UnimplementedHealthServer
	mu       sync.Mutex
	script   []step
	calls    int
	previous []string // grpc-previous-rpc-attempts of each call
	services []string // the request's service of each call
	addr     string
}

func (s *server) n() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func (s *server) prev() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.previous...)
}

func (s *server) svcs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.services...)
}

func (s *server) next(ctx context.Context, service string) step {
	s.mu.Lock()
	defer s.mu.Unlock()
	md, _ := metadata.FromIncomingContext(ctx)
	prev := ""
	if v := md.Get(grpcretry.PreviousAttemptsKey); len(v) > 0 {
		prev = v[0]
	}
	s.previous = append(s.previous, prev)
	s.services = append(s.services, service)
	st := step{}
	if s.calls < len(s.script) {
		st = s.script[s.calls]
	}
	s.calls++
	return st
}

func (s *server) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	st := s.next(ctx, req.GetService())
	if st.sleep > 0 {
		select {
		case <-time.After(st.sleep):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if st.trailer != nil {
		_ = grpc.SetTrailer(ctx, st.trailer)
	}
	if st.err != nil {
		return nil, st.err
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

func (s *server) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	st := s.next(stream.Context(), req.GetService())
	for range st.msgs {
		if err := stream.Send(&healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}); err != nil {
			return err
		}
	}
	if st.trailer != nil {
		stream.SetTrailer(st.trailer)
	}
	return st.err
}

// start serves script on 127.0.0.1 and returns a client through the
// interceptors with opts.
func start(t *testing.T, script []step, opts ...grpcretry.Option) (*server, healthpb.HealthClient) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server{script: script, addr: ln.Addr().String()}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, srv)
	go func() { _ = gs.Serve(ln) }()
	conn, err := grpc.NewClient(srv.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDisableRetry(),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 100 * time.Millisecond}, MinConnectTimeout: time.Second}),
		grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(opts...)),
		grpc.WithStreamInterceptor(grpcretry.StreamClientInterceptor(opts...)),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
	})
	return srv, healthpb.NewHealthClient(conn)
}

func fast(attempts int) *retry.Policy {
	return &retry.Policy{MaxAttempts: attempts, Backoff: retry.Constant{Interval: time.Millisecond}}
}

func exhausted(d time.Duration) error {
	st, _ := status.New(codes.ResourceExhausted, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
	return st.Err()
}

var unavailable = status.Error(codes.Unavailable, "try again")

func TestUnaryRetriesUnavailableAndSaysWhichAttempt(t *testing.T) {
	srv, client := start(t, []step{{err: unavailable}, {err: unavailable}}, grpcretry.WithPolicy(fast(5)))
	resp, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{Service: "orders"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Check = %v, %v; want SERVING after two UNAVAILABLE", resp, err)
	}
	if srv.n() != 3 || srv.prev()[0] != "" || srv.prev()[1] != "1" || srv.prev()[2] != "2" {
		t.Errorf("%d calls, grpc-previous-rpc-attempts %q; want 3 and \"\", \"1\", \"2\"", srv.n(), srv.prev())
	}
}

func TestUnaryHonoursRetryInfoAndPushback(t *testing.T) {
	for _, tc := range []struct {
		name string
		step step
		min  time.Duration
	}{
		{"RetryInfo", step{err: exhausted(80 * time.Millisecond)}, 80 * time.Millisecond},
		{"pushback", step{err: status.Error(codes.Unavailable, "busy"), trailer: metadata.Pairs(grpcretry.PushbackKey, "80")}, 80 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var delays []time.Duration
			p := fast(3)
			p.HintSpread = retry.NoSpread
			p.Observer = retry.ObserverFuncs{Retry: func(e retry.RetryEvent) { delays = append(delays, e.Delay) }}
			srv, client := start(t, []step{tc.step}, grpcretry.WithPolicy(p))
			start := time.Now()
			if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
			if srv.n() != 2 || len(delays) != 1 || delays[0] != tc.min || time.Since(start) < tc.min {
				t.Errorf("%d calls, delays %v, took %v; want 2 calls after exactly %v", srv.n(), delays, time.Since(start), tc.min)
			}
		})
	}
}

func TestUnaryThrottleFeedsTheLimiterPerMethod(t *testing.T) {
	set, err := retry.NewLimiterSet(retry.LimiterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var throttled bool
	p := fast(3)
	p.Observer = retry.ObserverFuncs{Retry: func(e retry.RetryEvent) { throttled = e.Throttled }}
	_, client := start(t, []step{{err: exhausted(time.Millisecond)}}, grpcretry.WithPolicy(p), grpcretry.WithLimiters(set, nil))
	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if !throttled {
		t.Error("RESOURCE_EXHAUSTED was not retried as a throttle")
	}
	if _, limiting := set.Get("/grpc.health.v1.Health/Check").Rate(); !limiting {
		t.Error("Check's limiter is not limiting after a throttle")
	}
	if _, limiting := set.Get("/grpc.health.v1.Health/Watch").Rate(); limiting {
		t.Error("Watch's limiter limits after a throttle on Check")
	}
}

// TestHostileHints: a negative or malformed pushback means "do not retry";
// a huge RetryInfo is bounded by MaxHint.
func TestHostileHints(t *testing.T) {
	for _, v := range []string{"-1", "soon", "1e3"} {
		t.Run("pushback "+v, func(t *testing.T) {
			srv, client := start(t, []step{{err: unavailable, trailer: metadata.Pairs(grpcretry.PushbackKey, v)}}, grpcretry.WithPolicy(fast(5)))
			_, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{})
			if srv.n() != 1 || status.Code(err) != codes.Unavailable {
				t.Errorf("%d calls, %v; want 1 call and the UNAVAILABLE status", srv.n(), err)
			}
			var g *grpcretry.GiveUpError
			if errors.As(err, &g) {
				t.Errorf("a call that was not retried returned %T, want the invoker's error", err)
			}
		})
	}
	t.Run("RetryInfo of an hour", func(t *testing.T) {
		p := fast(2)
		p.MaxHint, p.HintSpread = 50*time.Millisecond, retry.NoSpread
		srv, client := start(t, []step{{err: exhausted(time.Hour)}}, grpcretry.WithPolicy(p))
		start := time.Now()
		if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); srv.n() != 2 || took < 50*time.Millisecond || took > 5*time.Second {
			t.Errorf("%d calls in %v; want 2, after MaxHint (50ms)", srv.n(), took)
		}
	})
}

func TestUnaryStopsOnCodesNotRetried(t *testing.T) {
	srv, client := start(t, []step{{err: status.Error(codes.NotFound, "no such service")}}, grpcretry.WithPolicy(fast(5)))
	_, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{})
	if srv.n() != 1 || status.Code(err) != codes.NotFound || status.Convert(err).Message() != "no such service" {
		t.Errorf("%d calls, %v; want 1 call and the server's NOT_FOUND unchanged", srv.n(), err)
	}
}

func TestUnaryGivesUpWithTheLastStatus(t *testing.T) {
	srv, client := start(t, []step{{err: unavailable}, {err: unavailable}, {err: unavailable}}, grpcretry.WithPolicy(fast(3)))
	_, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{})
	var g *grpcretry.GiveUpError
	if srv.n() != 3 || status.Code(err) != codes.Unavailable || !errors.Is(err, retry.ErrMaxAttempts) || !errors.As(err, &g) {
		t.Errorf("%d calls, %v (%T); want 3, UNAVAILABLE, a GiveUpError matching ErrMaxAttempts", srv.n(), err, err)
	}
}

// TestDeadlines: the attempt's own timeout is retried; the caller's
// deadline is not, and its status is DEADLINE_EXCEEDED.
func TestDeadlines(t *testing.T) {
	t.Run("attempt timeout", func(t *testing.T) {
		p := fast(3)
		p.AttemptTimeout = 50 * time.Millisecond
		srv, client := start(t, []step{{sleep: time.Second}}, grpcretry.WithPolicy(p))
		if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("Check = %v; want success on the attempt after the one that timed out", err)
		}
		if srv.n() != 2 {
			t.Errorf("%d calls, want 2", srv.n())
		}
	})
	t.Run("caller's deadline", func(t *testing.T) {
		srv, client := start(t, []step{{sleep: time.Second}}, grpcretry.WithPolicy(fast(3)))
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if srv.n() != 1 || status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("%d calls, %v; want 1 call, DEADLINE_EXCEEDED", srv.n(), err)
		}
	})
	t.Run("a hint past the deadline", func(t *testing.T) {
		srv, client := start(t, []step{{err: exhausted(time.Second)}}, grpcretry.WithPolicy(fast(3)))
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		if srv.n() != 1 || status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, retry.ErrDeadline) || time.Since(start) > 150*time.Millisecond {
			t.Errorf("%d calls, %v after %v; want 1 call and an immediate client-side DEADLINE_EXCEEDED", srv.n(), err, time.Since(start))
		}
	})
}

// TestConnectionReset: the first connection is closed as soon as it is
// accepted; the call is retried on a new one.
func TestConnectionReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server{}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, srv)
	go func() { _ = gs.Serve(&resetFirst{Listener: ln}) }()
	defer gs.Stop()
	p := &retry.Policy{MaxAttempts: 10, Backoff: retry.Exponential{Base: 10 * time.Millisecond, Cap: 100 * time.Millisecond}}
	conn, err := grpc.NewClient(ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 50 * time.Millisecond}, MinConnectTimeout: time.Second}),
		grpc.WithUnaryInterceptor(grpcretry.UnaryClientInterceptor(grpcretry.WithPolicy(p))))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("Check after a reset connection: %v", err)
	}
}

type resetFirst struct {
	net.Listener
	once sync.Once
}

func (l *resetFirst) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		reset := false
		l.once.Do(func() { reset = true })
		if !reset {
			return c, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // an RST, not a FIN
		}
		c.Close()
	}
}

// TestStreamRetriedBeforeTheFirstMessage: Watch fails before sending
// anything, then works: the request is sent again, the messages arrive.
func TestStreamRetriedBeforeTheFirstMessage(t *testing.T) {
	srv, client := start(t, []step{{err: unavailable}, {msgs: 2, err: nil}}, grpcretry.WithPolicy(fast(3)))
	stream, err := client.Watch(t.Context(), &healthpb.HealthCheckRequest{Service: "orders"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		_, err := stream.Recv()
		if err != nil {
			if err.Error() != "EOF" {
				t.Errorf("Recv: %v, want EOF after the messages", err)
			}
			break
		}
		n++
	}
	if n != 2 || srv.n() != 2 || srv.svcs()[1] != "orders" || srv.prev()[1] != "1" {
		t.Errorf("%d messages, %d calls, services %q, previous attempts %q; want 2, 2, the request sent again, \"1\"", n, srv.n(), srv.svcs(), srv.prev())
	}
}

// TestStreamNotRetriedAfterTheFirstMessage: once a message has arrived the
// stream is committed: a later failure reaches the caller.
func TestStreamNotRetriedAfterTheFirstMessage(t *testing.T) {
	srv, client := start(t, []step{{msgs: 1, err: unavailable}, {msgs: 5}}, grpcretry.WithPolicy(fast(3)))
	stream, err := client.Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("first Recv: %v", err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.Unavailable || srv.n() != 1 {
		t.Errorf("second Recv: %v after %d calls; want UNAVAILABLE, no retry", err, srv.n())
	}
}

func TestStreamGivesUp(t *testing.T) {
	srv, client := start(t, []step{{err: unavailable}, {err: unavailable}}, grpcretry.WithPolicy(fast(2)))
	stream, err := client.Watch(t.Context(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if status.Code(err) != codes.Unavailable || !errors.Is(err, retry.ErrMaxAttempts) || srv.n() != 2 {
		t.Errorf("Recv: %v after %d calls; want UNAVAILABLE giving up after 2", err, srv.n())
	}
}

// TestPerMethodClassifierAndPolicy: WithClassifier retries a code the
// defaults stop on; WithMethodPolicy gives a method its own attempts.
func TestPerMethodClassifierAndPolicy(t *testing.T) {
	internal := status.Error(codes.Internal, "flaky backend")
	classify := grpcretry.WithClassifier(func(method string, err error) retry.Decision {
		if method == "/grpc.health.v1.Health/Check" && status.Code(err) == codes.Internal {
			return retry.Retry
		}
		return retry.Unknown
	})
	srv, client := start(t, []step{{err: internal}, {err: internal}}, grpcretry.WithPolicy(fast(5)), classify)
	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); err != nil || srv.n() != 3 {
		t.Errorf("Check = %v after %d calls; want INTERNAL retried to success on the 3rd", err, srv.n())
	}

	perMethod := grpcretry.WithMethodPolicy(func(method string) *retry.Policy {
		if method == "/grpc.health.v1.Health/Check" {
			return fast(2)
		}
		return nil
	})
	srv, client = start(t, []step{{err: unavailable}, {err: unavailable}, {err: unavailable}}, grpcretry.WithPolicy(fast(5)), perMethod)
	if _, err := client.Check(t.Context(), &healthpb.HealthCheckRequest{}); !errors.Is(err, retry.ErrMaxAttempts) || srv.n() != 2 {
		t.Errorf("Check = %v after %d calls; want giving up after Check's own 2 attempts", err, srv.n())
	}
}

// TestCallerCancelsDuringTheSleep: the status is CANCELLED, not the last
// attempt's.
func TestCallerCancelsDuringTheSleep(t *testing.T) {
	p := &retry.Policy{MaxAttempts: 5, Backoff: retry.Constant{Interval: time.Hour}, Jitter: retry.NoJitter}
	_, client := start(t, []step{{err: unavailable}}, grpcretry.WithPolicy(p))
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Canceled || !errors.Is(err, context.Canceled) {
		t.Errorf("Check = %v (code %v); want CANCELLED wrapping context.Canceled", err, status.Code(err))
	}
}

// lateCtx is a context whose deadline has passed but whose timer has not
// fired yet (Err is nil): the moment gRPC's own timer can beat it.
type lateCtx struct{ context.Context }

func (lateCtx) Deadline() (time.Time, bool) { return time.Now().Add(-time.Millisecond), true }

// TestClassifyDeadlineByTheClock: DEADLINE_EXCEEDED is the attempt's own
// timeout only if the call's deadline has not passed, judged by the clock
// as well as by the contexts' errors.
func TestClassifyDeadlineByTheClock(t *testing.T) {
	err := status.Error(codes.DeadlineExceeded, "deadline")
	bg := context.Background()
	late := lateCtx{bg}
	if d, _ := grpcretry.Classify(bg, late, err, nil); d != retry.Retry {
		t.Errorf("the attempt's deadline passed, the call's live: %v, want retry", d)
	}
	if d, _ := grpcretry.Classify(late, late, err, nil); d != retry.Stop {
		t.Errorf("the call's deadline passed (its timer not yet fired): %v, want stop", d)
	}
	if d, _ := grpcretry.Classify(bg, bg, err, nil); d != retry.Stop {
		t.Errorf("a server-side DEADLINE_EXCEEDED: %v, want stop", d)
	}
}
