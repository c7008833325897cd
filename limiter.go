package retry

import (
	"iter"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// A Limiter paces the attempts of every caller that shares it: one limiter
// per throttled resource (a table, a host, a queue). Policy.Limiter takes
// any implementation: the AdaptiveLimiter of this package (the robust
// default or the AWS CUBIC preset), a LimiterSet member, or a limiter of
// your own, such as one shared by many processes through a store.
//
// The protocol, as Run and Do drive it:
//
//	t, wait, ok := l.ReserveAt(now, earliest, deadline)
//	// !ok: refused, nothing held (the slot would begin after deadline).
//	// t == 0 && wait > 0: nothing held; call ReserveAt again after wait.
//	// t != 0: a place in line is held; after wait, call WaitAt(now, t)
//	//         until it returns 0 (the rate may change meanwhile), or
//	//         CancelAt(now, t) to give the place back.
//	// wait == 0: send now.
//	… attempt …
//	l.ObserveAt(now, outcome)
//
// earliest (zero: none) is when the attempt may be sent at the earliest: the
// end of the backoff delay. A limiter may use it to overlap the delay with
// its line (join the line so as to reach its head when the delay ends); Run
// never sends before earliest, whatever the limiter answers.
//
// now may be the zero Time: Do passes it on a first attempt when it has not
// read the clock (reading it costs more than a calm limiter's whole work).
// A limiter that needs the time then reads it itself.
//
// Implementations must be safe for concurrent use.
type Limiter interface {
	ReserveAt(now, earliest, deadline time.Time) (t Ticket, wait time.Duration, ok bool)
	WaitAt(now time.Time, t Ticket) time.Duration
	CancelAt(now time.Time, t Ticket)
	ObserveAt(now time.Time, o Outcome)
}

// Ticket is a place in a Limiter's line, issued by ReserveAt; 0 is none.
type Ticket uint64

// Outcome is what became of an attempt, as a Limiter is told.
type Outcome uint8

const (
	// OutcomeAccepted: the service took the attempt (a success, or an answer that
	// is neither a throttle nor a failure of the attempt to be served).
	OutcomeAccepted Outcome = iota
	// OutcomeThrottled: the service refused the attempt for load (429, 503,
	// ProvisionedThroughputExceeded, RESOURCE_EXHAUSTED…).
	OutcomeThrottled
	// OutcomeFailed: the attempt failed for another reason (a 500, a reset, a
	// timeout, an outage). It says nothing about the service's capacity, so
	// it must not move the rate in either direction.
	OutcomeFailed
)

// String returns "accepted", "throttled" or "failed".
func (o Outcome) String() string {
	switch o {
	case OutcomeAccepted:
		return "accepted"
	case OutcomeThrottled:
		return "throttled"
	case OutcomeFailed:
		return "failed"
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// nowOr returns now, or the clock's time when now is zero.
func nowOr(now time.Time) time.Time {
	if now.IsZero() {
		return time.Now()
	}
	return now
}

// DefaultLimiterIdle is how long a LimiterSet keeps a key's limiter unused
// before it may be evicted (10 minutes): long enough that a resource used
// every few minutes keeps what its limiter learnt, short enough that a set
// keyed by many short-lived resources stays small.
const DefaultLimiterIdle = 10 * time.Minute

// LimiterSet is a keyed set of adaptive limiters — one per table, per host —
// created on first use with one configuration. It is safe for concurrent
// use. A key's limiter unused for DefaultLimiterIdle is evicted (a later Get
// starts a fresh one), so the set stays bounded by the keys in use.
type LimiterSet struct {
	cfg  LimiterConfig
	m    sync.Map // string → *setEntry
	gets atomic.Uint64
	n    atomic.Int64
}

type setEntry struct {
	l    *AdaptiveLimiter
	used atomic.Int64 // unix nanoseconds of the last Get
}

// NewLimiterSet returns an empty set, or an error if cfg is out of range.
func NewLimiterSet(cfg LimiterConfig) (*LimiterSet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &LimiterSet{cfg: cfg}, nil
}

// Validate reports whether the set's configuration is in range.
func (s *LimiterSet) Validate() error { return s.cfg.Validate() }

// Get returns the limiter for key, creating it on first use.
func (s *LimiterSet) Get(key string) *AdaptiveLimiter { return s.GetAt(time.Now(), key) }

// GetAt is Get at now: it marks the key used at now and, every 1024 calls,
// evicts the keys unused for DefaultLimiterIdle.
func (s *LimiterSet) GetAt(now time.Time, key string) *AdaptiveLimiter {
	ns := now.UnixNano()
	v, ok := s.m.Load(key)
	if !ok {
		e := &setEntry{l: &AdaptiveLimiter{cfg: s.cfg.withDefaults()}}
		var loaded bool
		if v, loaded = s.m.LoadOrStore(key, e); !loaded {
			s.n.Add(1)
		}
	}
	e := v.(*setEntry)
	if e.used.Load() != ns {
		e.used.Store(ns)
	}
	if s.gets.Add(1)%1024 == 0 {
		s.evict(ns)
	}
	return e.l
}

// Len returns the number of keys held.
func (s *LimiterSet) Len() int { return int(s.n.Load()) }

// All yields each key held and its limiter (in no particular order), for
// reporting (gauges of each key's rate); it does not mark keys used.
func (s *LimiterSet) All() iter.Seq2[string, *AdaptiveLimiter] {
	return func(yield func(string, *AdaptiveLimiter) bool) {
		s.m.Range(func(k, v any) bool { return yield(k.(string), v.(*setEntry).l) })
	}
}

func (s *LimiterSet) evict(now int64) {
	s.m.Range(func(k, v any) bool {
		if now-v.(*setEntry).used.Load() > int64(DefaultLimiterIdle) {
			if s.m.CompareAndDelete(k, v) {
				s.n.Add(-1)
			}
		}
		return true
	})
}
