package grpcretry

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/jittered/retry"
)

// StreamClientInterceptor retries streaming calls until their first
// response message (see the package doc).
func StreamClientInterceptor(opts ...Option) grpc.StreamClientInterceptor {
	c := newConfig(opts)
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, callOpts ...grpc.CallOption) (grpc.ClientStream, error) {
		s := &stream{
			ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer, opts: callOpts,
			limit: c.bufferLimit,
		}
		s.run = c.policyFor(cc.Target(), method).StartContext(ctx, time.Now())
		if err := s.open(); err != nil {
			return nil, err
		}
		return s, nil
	}
}

// stream is a client stream retried until committed: its first response
// message, its end, an error not retried, or a buffer past the limit.
type stream struct {
	ctx      context.Context
	desc     *grpc.StreamDesc
	cc       *grpc.ClientConn
	method   string
	streamer grpc.Streamer
	opts     []grpc.CallOption
	limit    int

	mu        sync.Mutex // SendMsg and RecvMsg may run on two goroutines
	run       retry.Run
	attempt   int
	cur       grpc.ClientStream
	curCtx    context.Context
	cancel    context.CancelFunc
	committed bool
	sent      []any // messages sent while not committed
	size      int
	closed    bool // CloseSend called
	last      error
}

// wait waits out the delay and the limiter before the next attempt.
func (s *stream) wait() error {
	dl, _ := s.ctx.Deadline()
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		now := time.Now()
		w, ok := s.run.ReserveAt(now, dl)
		if !ok {
			return unmark(s.run.EndAt(now, retry.ReasonDeadline, s.last,
				errors.New("grpcretry: the adaptive limiter's next send slot is after the context deadline (client-side)")))
		}
		if w <= 0 {
			return nil
		}
		if t == nil {
			t = time.NewTimer(w)
		} else {
			t.Reset(w)
		}
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return unmark(s.run.EndAt(time.Now(), retry.ReasonContext, s.last, context.Cause(s.ctx)))
		}
	}
}

// open starts attempts until one opens a stream, sending again what was
// sent before; it returns the give-up error if none does.
func (s *stream) open() error {
	for {
		if err := s.wait(); err != nil {
			return err
		}
		s.attempt++
		if s.cancel != nil {
			s.cancel() // the failed attempt's stream
		}
		actx, cancel := context.WithCancel(s.ctx)
		cs, err := s.streamer(withAttempt(actx, s.attempt), s.desc, s.cc, s.method, s.opts...)
		if err != nil {
			cancel()
			if gerr := s.failed(actx, err, nil); gerr != nil {
				return gerr
			}
			continue
		}
		s.cur, s.curCtx, s.cancel = cs, actx, cancel
		for _, m := range s.sent {
			if err := cs.SendMsg(m); err != nil {
				break // the stream failed: RecvMsg returns its status
			}
		}
		if s.closed {
			_ = cs.CloseSend()
		}
		return nil
	}
}

// failed records a failed attempt; it returns the error to give up with,
// or nil to try again.
func (s *stream) failed(actx context.Context, err error, trailer metadata.MD) error {
	s.last = mark(s.ctx, actx, err, trailer)
	dl, _ := s.ctx.Deadline()
	if _, gerr := s.run.FailedAt(time.Now(), s.last, dl); gerr != nil {
		return unmark(gerr)
	}
	return nil
}

// commit ends retrying: the stream stays on its current attempt.
func (s *stream) commit() {
	s.committed, s.sent, s.size = true, nil, 0
}

func (s *stream) SendMsg(m any) error {
	s.mu.Lock()
	if !s.committed {
		if pm, ok := m.(proto.Message); ok {
			s.size += proto.Size(pm)
		}
		if s.size > s.limit {
			s.commit() // past the buffer: this attempt is the last
		} else {
			s.sent = append(s.sent, m)
		}
	}
	cur := s.cur
	s.mu.Unlock()
	return cur.SendMsg(m)
}

func (s *stream) CloseSend() error {
	s.mu.Lock()
	s.closed = true
	cur := s.cur
	s.mu.Unlock()
	return cur.CloseSend()
}

// RecvMsg receives on the current attempt; until the stream is committed,
// a failure that the Policy retries opens a new attempt and receives
// again. The lock is not held while receiving: SendMsg may run meanwhile
// (a message it buffers before a new attempt opens is sent again on it).
func (s *stream) RecvMsg(m any) error {
	for {
		s.mu.Lock()
		cur, committed, cancel := s.cur, s.committed, s.cancel
		s.mu.Unlock()
		err := cur.RecvMsg(m)
		if committed {
			if err != nil {
				cancel()
			}
			return err
		}
		if done, err := s.afterRecv(err); done {
			return err
		}
	}
}

// afterRecv decides, for an uncommitted stream, what a receive's outcome
// means: done with the error to return, or a new attempt opened.
func (s *stream) afterRecv(err error) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil || err == io.EOF {
		// The first message, or the end: no more retries.
		s.commit()
		s.run.SucceededAt(time.Now())
		if err != nil {
			s.cancel()
		}
		return true, err
	}
	if gerr := s.failed(s.curCtx, err, s.cur.Trailer()); gerr != nil {
		s.commit()
		s.cancel()
		return true, gerr
	}
	if gerr := s.open(); gerr != nil {
		s.commit()
		return true, gerr
	}
	return false, nil
}

func (s *stream) Header() (metadata.MD, error) {
	s.mu.Lock()
	cur := s.cur
	s.mu.Unlock()
	return cur.Header()
}

func (s *stream) Trailer() metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Trailer()
}

func (s *stream) Context() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur.Context()
}
