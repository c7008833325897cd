// Package redisretry shares one adaptive limiter among every process that
// names the same resource, through Redis: a fleet of pods writing to one
// DynamoDB table, the workers of a batch job calling one API, back off as
// one client instead of each learning the resource's capacity alone.
//
// A Limiter is a retry.Limiter: set it as Policy.Limiter (or pass it to
// httpretry and awsretry as any limiter) and nothing else changes. Its state
// — the fleet's send rate and a shared line of send slots (GCRA) — lives in
// one Redis hash per resource key, updated atomically by a server-side
// script (EVALSHA, reloaded by itself after SCRIPT FLUSH or a restart). The
// rate follows the retry package's Goodput law applied to the answers of the
// whole fleet, and the key expires when the resource goes unused.
//
// It costs no Redis round trip per attempt:
//
//   - while the fleet is calm (nothing throttled for a while), attempts go
//     out at once, as with no limiter; each process reports its answers
//     once per Interval, from a background goroutine;
//   - while the fleet is limiting, a process leases send slots in batches
//     (up to Lease of the fleet's rate per round trip); it reports its
//     answers with each lease and, from a timer, just after each of the
//     fleet's periods ends.
//
// Redis is never a single point of failure. Every Redis command is bounded
// by Timeout and by the caller's deadline; when one fails, the process
// falls back to its local limiter (by default the retry package's robust
// Goodput limiter, kept learning from this process's answers all along) and
// tries Redis again every RetryAfter, rejoining the fleet when it answers.
// State found in Redis that is not the limiter's (a key of another type,
// fields that are not numbers in range) is reset, never trusted.
//
// Measured over separate processes (BENCHMARKS.md, "A fleet sharing one
// limiter"), 4 to 16 processes sharing it finish within about 1 % of the
// ideal time in median with a fifth to a sixth of the throttles of one
// Goodput limiter per process, and a process that joins a busy fleet is at
// its share within a quarter of a second; 16 processes still see about
// 20 % more throttles than one process does.
package redisretry

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jittered/retry"
	"github.com/redis/go-redis/v9"
)

//go:embed step.lua
var stepSource string

// stepScript is the one server-side script: report answers, close the
// fleet's periods, lease slots. go-redis runs it by EVALSHA and falls back
// to EVAL (which caches it again) when Redis answers NOSCRIPT.
var stepScript = redis.NewScript(stepSource)

// Config configures a Limiter. Zero fields take the defaults given for
// each; Key is required.
type Config struct {
	// Key names the resource the fleet shares (a table, a queue, a host):
	// every process that uses the same Key (and Prefix) shares one limiter.
	Key string
	// Prefix is prepended to Key to form the Redis key (default
	// "retry:limiter:").
	Prefix string

	// Interval is the fleet's decision period (default 200 ms; 10 ms to
	// 10 s). Each process reports its answers once per Interval: while the
	// fleet is calm, from its callers' calls; while it is limiting, from a
	// timer just after each period ends (and with each lease), its answers
	// counted on either side of that end. A period closes a quarter
	// Interval after its end, when every process has reported it. With
	// Goodput's 100 ms and reports counted in the period they reached, the
	// fleet overshot and cut by turns (4 processes, 40 writers, on a 200/s
	// service: 29–46 % of attempts throttled).
	Interval time.Duration
	// CalmAfter is how long without a throttle, the rate not binding, before
	// the fleet stops limiting (default 2 s, as Goodput).
	CalmAfter time.Duration
	// Headroom, Probe and Beta are Goodput's (see retry.LimiterConfig;
	// defaults 0.01, 0.01, 0.5). Headroom is a third of Goodput's 0.03:
	// while throttled the fleet sends Headroom above what the service
	// accepted, and the fleet's count — every process's answers, averaged
	// with the last measure — needs less margin than one process's; at
	// 0.03 one process sat 3 % over a 1000/s service, 28 throttles a
	// second (7 at 0.01).
	Headroom, Probe, Beta float64
	// Burst is how much unused rate the fleet's line keeps as credit
	// (default 50 ms of the rate, as Goodput's Burst).
	Burst time.Duration
	// Lease is how much of the fleet's rate one round trip may lease to one
	// process (default 50 ms of the rate, at least one slot), and how far
	// ahead of now the fleet's line leases slots: larger leases mean fewer
	// round trips, coarser sharing and a longer wait for a process that
	// joins a busy fleet.
	Lease time.Duration

	// Timeout bounds each Redis command (default 100 ms); a command that
	// fails or takes longer makes the process fall back to Local.
	Timeout time.Duration
	// RetryAfter is how often a process that fell back tries Redis again
	// (default 1 s).
	RetryAfter time.Duration
	// TTL is how long the resource's key lives in Redis unused (default 10
	// minutes, as retry.DefaultLimiterIdle).
	TTL time.Duration
	// Local is the limiter used while Redis cannot be reached (default: a
	// new retry.AdaptiveLimiter with the default configuration). It is fed
	// every answer, so it is warm when needed.
	Local retry.Limiter
}

// Defaults, from the retry package's Goodput limiter where they have an
// equivalent there.
const (
	DefaultPrefix     = "retry:limiter:"
	DefaultInterval   = 200 * time.Millisecond
	DefaultCalmAfter  = 2 * time.Second
	DefaultBurst      = 50 * time.Millisecond
	DefaultLease      = 50 * time.Millisecond
	DefaultTimeout    = 100 * time.Millisecond
	DefaultRetryAfter = time.Second
	DefaultTTL        = retry.DefaultLimiterIdle
)

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	def(&c.Interval, DefaultInterval)
	def(&c.CalmAfter, DefaultCalmAfter)
	def(&c.Burst, DefaultBurst)
	def(&c.Lease, DefaultLease)
	def(&c.Timeout, DefaultTimeout)
	def(&c.RetryAfter, DefaultRetryAfter)
	def(&c.TTL, DefaultTTL)
	if c.Headroom == 0 {
		c.Headroom = 0.01
	}
	if c.Probe == 0 {
		c.Probe = 0.01
	}
	if c.Beta == 0 {
		c.Beta = 0.5
	}
	return c
}

// Validate reports whether the configuration is usable, naming the field,
// its value and what is allowed.
func (c Config) Validate() error {
	if c.Key == "" {
		return errors.New(`redisretry: Config.Key is empty: name the resource the fleet shares (e.g. "dynamodb:orders")`)
	}
	durs := []struct {
		name   string
		v      time.Duration
		lo, hi time.Duration
	}{
		{"Interval", c.Interval, 10 * time.Millisecond, 10 * time.Second},
		{"CalmAfter", c.CalmAfter, time.Millisecond, time.Hour},
		{"Burst", c.Burst, time.Millisecond, time.Minute},
		{"Lease", c.Lease, time.Millisecond, 10 * time.Second},
		{"Timeout", c.Timeout, time.Millisecond, time.Minute},
		{"RetryAfter", c.RetryAfter, time.Millisecond, time.Hour},
		{"TTL", c.TTL, time.Second, 30 * 24 * time.Hour},
	}
	for _, d := range durs {
		if d.v != 0 && (d.v < d.lo || d.v > d.hi) {
			return fmt.Errorf("redisretry: Config.%s = %v: must be in [%v, %v] (0 means the default)", d.name, d.v, d.lo, d.hi)
		}
	}
	fl := []struct {
		name   string
		v      float64
		lo, hi float64
	}{
		{"Headroom", c.Headroom, 0, 1},
		{"Probe", c.Probe, 0, 1},
		{"Beta", c.Beta, 0, 0.99},
	}
	for _, f := range fl {
		if math.IsNaN(f.v) || f.v < f.lo || f.v > f.hi {
			return fmt.Errorf("redisretry: Config.%s = %v: must be in [%g, %g] (0 means the default)", f.name, f.v, f.lo, f.hi)
		}
	}
	return nil
}

// Stats counts what a Limiter did, for tests and metrics.
type Stats struct {
	Commands  uint64 // script calls sent to Redis
	Leased    uint64 // send slots leased from the fleet's line
	Expired   uint64 // leased slots not used in time (dropped, more than Burst old)
	Fallbacks uint64 // times Redis failed and the local limiter took over
	Rejoins   uint64 // times Redis answered again after a fallback
	Repairs   uint64 // times the state found in Redis was reset
}

// Limiter is one process's handle on a fleet-wide limiter. It implements
// retry.Limiter and is safe for concurrent use. Close it when done: it
// stops its background reports.
type Limiter struct {
	cfg   Config
	rdb   redis.UniversalClient
	key   string
	local retry.Limiter
	args  [8]string // the script's constant arguments

	started atomic.Bool
	calm    atomic.Bool // the fleet is calm, as last heard
	// throttledCalm: a throttle came while the fleet was calm, and the
	// fleet has not said it limits yet: the local limiter paces meanwhile.
	throttledCalm atomic.Bool
	down          atomic.Bool  // Redis failed: the local limiter decides
	downTill      atomic.Int64 // unix ns: when to try Redis again
	acc, thr      atomic.Int64 // answers not yet reported, before bound
	accAfter      atomic.Int64 // answers not yet reported, from bound on
	thrAfter      atomic.Int64
	// bound is the end of the fleet's open period as last heard (local
	// unix ns; 0: none) and boundSrv the same in the server's µs, as the
	// script gave it: answers are counted on either side of it, so that
	// the fleet counts them in the period they came in.
	bound    atomic.Int64
	boundSrv atomic.Pointer[string]
	waited   atomic.Bool  // a caller waited since the last report
	lastStep atomic.Int64 // unix ns of the last report or lease
	stepping atomic.Bool  // a background report is in flight
	closed   atomic.Bool
	wg       sync.WaitGroup
	// life orders Close against starting goroutines (wg.Add must not race
	// wg.Wait), and guards tick: the report due just after the fleet's
	// open period ends.
	life sync.Mutex
	tick *time.Timer

	commands, leased, expired, fallbacks, rejoins, repairs atomic.Uint64
	lastErr                                                atomic.Pointer[error]

	mu      sync.Mutex
	slots   []time.Time // leased slot start times, local clock, ascending
	held    map[retry.Ticket]time.Time
	next    retry.Ticket
	leasing bool      // a lease is in flight
	demand  int       // reservations since the last lease
	nextAt  time.Time // when the fleet's line has its next slot, as last heard
	leaseAt time.Time // no lease before: the line's next slot is too far ahead
	// starved is when a caller of this process last found no slot while it
	// held none (zero: it holds some). The longer it starves, the further
	// ahead the fleet leases it slots: without that, processes that had
	// slots leased again the moment the line came within a period, and a
	// late joiner found it a period and a lease ahead for seconds.
	starved time.Time
	// share is this process's pace while it falls back from a fleet that
	// was limiting (slots per second, what it used then plus Headroom; 0:
	// none), and shareAt its next slot: its local limiter, calm because the
	// fleet kept it from being throttled, would send unpaced (16 processes:
	// a second of throttles after each fallback).
	share     float64
	shareAt   time.Time
	used      int     // slots used since the last lease
	use       float64 // slots this process uses per second, smoothed
	lastLease time.Time
	rate      float64
}

// errClosed: a command not sent, the Limiter being closed.
var errClosed = errors.New("redisretry: the Limiter is closed")

// localTag marks tickets issued by the local limiter.
const localTag retry.Ticket = 1 << 63

// New returns a Limiter for cfg.Key on rdb (a *redis.Client,
// *redis.ClusterClient, *redis.Ring or a failover client: any
// redis.UniversalClient), or an error naming a field out of range. It does
// not contact Redis: the first reservation does.
func New(rdb redis.UniversalClient, cfg Config) (*Limiter, error) {
	if rdb == nil {
		return nil, errors.New("redisretry: New: the Redis client is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := cfg.withDefaults()
	l := &Limiter{cfg: c, rdb: rdb, key: c.Prefix + c.Key, local: c.Local, held: map[retry.Ticket]time.Time{}}
	if l.local == nil {
		al, err := retry.NewAdaptiveLimiter(retry.LimiterConfig{})
		if err != nil {
			return nil, err
		}
		l.local = al
	}
	us := func(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }
	f := func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	l.args = [8]string{us(c.Interval), us(c.CalmAfter), f(c.Headroom), f(c.Probe), f(c.Beta), us(c.Burst),
		strconv.FormatInt(c.TTL.Milliseconds(), 10), us(c.Lease)}
	l.calm.Store(true)
	return l, nil
}

// Key returns the Redis key holding the fleet's state.
func (l *Limiter) Key() string { return l.key }

// Stats returns the counts so far.
func (l *Limiter) Stats() Stats {
	return Stats{Commands: l.commands.Load(), Leased: l.leased.Load(), Expired: l.expired.Load(), Fallbacks: l.fallbacks.Load(),
		Rejoins: l.rejoins.Load(), Repairs: l.repairs.Load()}
}

// Rate returns the fleet's send rate as last heard (attempts per second),
// and false while the fleet is calm or Redis cannot be reached.
func (l *Limiter) Rate() (float64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate, !l.calm.Load() && !l.down.Load()
}

// Err returns the last error from Redis (nil if none): why the process
// fell back, for logs.
func (l *Limiter) Err() error {
	if e := l.lastErr.Load(); e != nil {
		return *e
	}
	return nil
}

// FellBack reports whether the process is on its local limiter now.
func (l *Limiter) FellBack() bool { return l.down.Load() }

// Close stops the background reports and waits for one in flight. The
// Limiter still works after Close, on its local limiter only.
func (l *Limiter) Close() error {
	l.life.Lock()
	l.closed.Store(true)
	if l.tick != nil {
		l.tick.Stop()
	}
	l.life.Unlock()
	l.wg.Wait()
	l.down.Store(true)
	l.downTill.Store(math.MaxInt64)
	return nil
}

func nowOr(now time.Time) time.Time {
	if now.IsZero() {
		return time.Now()
	}
	return now
}

// ReserveAt asks for a send slot; see retry.Limiter for the protocol.
func (l *Limiter) ReserveAt(now, earliest, deadline time.Time) (retry.Ticket, time.Duration, bool) {
	now = nowOr(now)
	if !l.started.Load() && l.started.CompareAndSwap(false, true) && !l.closed.Load() {
		// First use: learn the fleet's state now, so that a process joining
		// a limiting fleet takes its place in the line at once.
		l.step(now, 0, 0, deadline)
	}
	if l.down.Load() {
		l.background(now)
		if t, w, ok, paced := l.sharePace(now, earliest, deadline); paced {
			return t, w, ok
		}
		return l.localReserve(now, earliest, deadline)
	}
	if l.calm.Load() {
		l.background(now)
		if l.throttledCalm.Load() {
			// This process was throttled and the fleet has not answered
			// yet: pace on the local limiter meanwhile (it started on that
			// throttle), as a process of its own would.
			return l.localReserve(now, earliest, deadline)
		}
		return 0, max(earliest.Sub(now), 0), true
	}
	if w := earliest.Sub(now); w > 0 {
		return 0, w, true // take a slot when the delay ends
	}
	l.background(now) // periods close with time, answers or not
	l.mu.Lock()
	l.demand++
	slot, ok := l.popSlot(now)
	if !ok {
		// A caller waits for the line: the rate binds (the fleet grows it
		// only then).
		l.waited.Store(true)
		if l.starved.IsZero() {
			l.starved = now
		}
	}
	if !ok && l.leasing {
		l.mu.Unlock()
		return 0, time.Millisecond, true // a lease is in flight: come back
	}
	if wake := l.starved.Add(l.leaseAt.Sub(l.starved) / 2); !ok && now.Before(wake) {
		// The fleet's line has no slot for us yet: no round trip before
		// one may be leased (the line within a period, and as much again
		// as this process has starved).
		w := min(wake.Sub(now), l.cfg.Interval) // the rate may rise meanwhile
		l.mu.Unlock()
		if !deadline.IsZero() && now.Add(w).After(deadline) && l.nextAt.After(deadline) {
			return 0, w, false
		}
		return 0, w, true
	}
	if !ok {
		// Lease what this process used over the last period (a newcomer:
		// what waits now); the script grants at most Lease of the rate. The
		// reservations since the last lease count a waiting caller each
		// time it comes back: leasing them took a batch as large as the
		// script grants, a second of a small process's share, every time.
		want := l.demand
		if l.use > 0 {
			want = int(math.Ceil(l.use * l.cfg.Interval.Seconds()))
		}
		want = min(max(want, 1), 256)
		l.leasing = true
		starved := now.Sub(l.starved)
		l.mu.Unlock()
		l.step(now, want, starved, deadline)
		l.mu.Lock()
		l.leasing = false
		if l.down.Load() || l.calm.Load() {
			l.mu.Unlock()
			return l.ReserveAt(now, earliest, deadline)
		}
		if slot, ok = l.popSlot(now); !ok {
			// The line's next slot is more than Lease ahead: come back when
			// it is due, or after a period, whichever is first.
			w := min(max(l.nextAt.Sub(now), time.Millisecond), l.cfg.Interval)
			l.mu.Unlock()
			if !deadline.IsZero() && now.Add(w).After(deadline) && l.nextAt.After(deadline) {
				return 0, w, false
			}
			return 0, w, true
		}
	}
	if !deadline.IsZero() && slot.After(deadline) {
		l.pushSlot(slot) // not ours to waste: the next caller may use it
		l.mu.Unlock()
		return 0, slot.Sub(now), false
	}
	w := slot.Sub(now)
	if w <= 0 {
		l.mu.Unlock()
		return 0, 0, true
	}
	l.next++
	t := l.next
	l.held[t] = slot
	l.mu.Unlock()
	l.waited.Store(true)
	return t, w, true
}

// sharePace paces a process that fell back from a limiting fleet at its
// share, until its local limiter limits by itself; paced is false when it
// does not apply.
func (l *Limiter) sharePace(now, earliest, deadline time.Time) (t retry.Ticket, w time.Duration, ok, paced bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.share <= 0 {
		return 0, 0, false, false
	}
	if r, ok := l.local.(interface{ Rate() (float64, bool) }); ok {
		if _, on := r.Rate(); on {
			l.share = 0 // it has learned this process's own pace
			return 0, 0, false, false
		}
	}
	if w := earliest.Sub(now); w > 0 {
		return 0, w, true, true // take a slot when the delay ends
	}
	slot := l.shareAt
	if slot.Before(now) {
		slot = now
	}
	if !deadline.IsZero() && slot.After(deadline) {
		return 0, slot.Sub(now), false, true
	}
	l.shareAt = slot.Add(time.Duration(float64(time.Second) / l.share))
	if !slot.After(now) {
		return 0, 0, true, true
	}
	l.next++
	l.held[l.next] = slot
	return l.next, slot.Sub(now), true, true
}

func (l *Limiter) localReserve(now, earliest, deadline time.Time) (retry.Ticket, time.Duration, bool) {
	t, w, ok := l.local.ReserveAt(now, earliest, deadline)
	if t != 0 {
		t |= localTag
	}
	return t, w, ok
}

// popSlot takes the earliest leased slot, dropping slots too old to use
// (more than Burst ago: sending on them now would be a burst the fleet did
// not grant). Called with mu held.
func (l *Limiter) popSlot(now time.Time) (time.Time, bool) {
	for len(l.slots) > 0 {
		s := l.slots[0]
		l.slots = l.slots[1:]
		if now.Sub(s) <= l.cfg.Burst {
			l.used++
			return s, true
		}
		l.expired.Add(1)
	}
	return time.Time{}, false
}

// pushSlot gives a slot back, keeping the slots in order. Called with mu
// held.
func (l *Limiter) pushSlot(s time.Time) {
	i := len(l.slots)
	for i > 0 && l.slots[i-1].After(s) {
		i--
	}
	l.slots = append(l.slots, time.Time{})
	copy(l.slots[i+1:], l.slots[i:])
	l.slots[i] = s
}

// WaitAt returns how long the holder of t must still wait; 0: send now.
func (l *Limiter) WaitAt(now time.Time, t retry.Ticket) time.Duration {
	if t&localTag != 0 {
		return l.local.WaitAt(now, t&^localTag)
	}
	now = nowOr(now)
	l.background(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.held[t]
	if !ok {
		return 0
	}
	if w := s.Sub(now); w > 0 {
		return w
	}
	delete(l.held, t)
	return 0
}

// CancelAt gives back a place that will not be used: its slot goes to the
// next caller of this process.
func (l *Limiter) CancelAt(now time.Time, t retry.Ticket) {
	if t&localTag != 0 {
		l.local.CancelAt(now, t&^localTag)
		return
	}
	now = nowOr(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	if s, ok := l.held[t]; ok {
		delete(l.held, t)
		if s.After(now) {
			l.pushSlot(s)
		}
	}
}

// ObserveAt reports an attempt's outcome: to the fleet (with the next
// report or lease) and to the local limiter.
func (l *Limiter) ObserveAt(now time.Time, o retry.Outcome) {
	l.local.ObserveAt(now, o)
	switch o {
	case retry.OutcomeAccepted:
		if l.after(now) {
			l.accAfter.Add(1)
		} else {
			l.acc.Add(1)
		}
	case retry.OutcomeThrottled:
		if l.after(now) {
			l.thrAfter.Add(1)
		} else {
			l.thr.Add(1)
		}
		if l.calm.Load() && !l.down.Load() {
			l.throttledCalm.Store(true)
			l.lastStep.Store(0) // the fleet must hear of it now
		}
	default:
		return // says nothing of the capacity
	}
	l.background(nowOr(now))
}

// after reports whether an answer at now came after the fleet's open
// period ended, as last heard.
func (l *Limiter) after(now time.Time) bool {
	b := l.bound.Load()
	return b != 0 && nowOr(now).UnixNano() >= b
}

// background sends a report from a goroutine if one is due: every
// Interval, or every RetryAfter while Redis is down.
func (l *Limiter) background(now time.Time) {
	if l.closed.Load() {
		return
	}
	ns := now.UnixNano()
	if l.down.Load() {
		if ns < l.downTill.Load() {
			return
		}
	} else if ns-l.lastStep.Load() < int64(l.cfg.Interval) {
		return
	}
	if !l.stepping.CompareAndSwap(false, true) {
		return
	}
	l.lastStep.Store(ns)
	l.report()
}

// report runs a step in the background (stepping is held, and released
// when it ends).
func (l *Limiter) report() {
	if !l.spawn(func() {
		defer l.stepping.Store(false)
		l.step(time.Now(), 0, 0, time.Time{})
	}) {
		l.stepping.Store(false)
	}
}

// spawn runs f in a goroutine that Close waits for, unless closed.
func (l *Limiter) spawn(f func()) bool {
	l.life.Lock()
	defer l.life.Unlock()
	if l.closed.Load() {
		return false
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
	return true
}

// periodReport reports the answers counted before the fleet's open period
// ended, just after it ended (timer-driven: callers that sleep through a
// backoff call nothing that would report them), so that they reach the
// period before it closes.
func (l *Limiter) periodReport() {
	if l.calm.Load() || l.down.Load() {
		return // limiting again, the fleet's answer arms it
	}
	// Again one Interval on, unless this process hears of the next period's
	// end before (its callers may all sleep through it).
	l.life.Lock()
	if !l.closed.Load() {
		l.tick.Reset(l.cfg.Interval)
	}
	l.life.Unlock()
	if l.acc.Load()+l.thr.Load()+l.accAfter.Load()+l.thrAfter.Load() == 0 {
		return
	}
	// Not held back by a report in flight (stepping): that one may have
	// taken its counts before the period ended.
	l.spawn(func() { l.step(time.Now(), 0, 0, time.Time{}) })
}

// step runs the script once: reports the answers counted since the last
// step, and leases up to want slots. It is bounded by Timeout and deadline;
// on failure the process falls back to its local limiter.
func (l *Limiter) step(now time.Time, want int, starved time.Duration, deadline time.Time) {
	timeout := l.cfg.Timeout
	byCaller := false // the caller's deadline, not Timeout, bounds the command
	if !deadline.IsZero() && deadline.Sub(now) < timeout {
		timeout, byCaller = deadline.Sub(now), true
	}
	if timeout <= 0 {
		return
	}
	bound := "0"
	if b := l.boundSrv.Load(); b != nil {
		bound = *b
	}
	acc, thr, acc2, thr2 := l.acc.Swap(0), l.thr.Swap(0), l.accAfter.Swap(0), l.thrAfter.Swap(0)
	waited := 0
	if l.waited.Swap(false) {
		waited = 1
	}
	l.lastStep.Store(now.UnixNano())
	l.commands.Add(1)
	res, err := l.run(timeout, [4]int64{acc, thr, acc2, thr2}, bound, waited, want, starved.Microseconds())
	got := time.Now()
	if err == nil {
		err = l.apply(got, res)
	}
	if errors.Is(err, errClosed) {
		return // Close, not Redis: nothing to fall back from
	}
	if err != nil {
		l.lastErr.Store(&err)
		// Keep the answers for the next report — unless the command may
		// still run (it timed out): then they may be counted already.
		timedOut := errors.Is(err, context.DeadlineExceeded)
		if !timedOut {
			l.acc.Add(acc + acc2) // the bound may have moved: count them before the next
			l.thr.Add(thr + thr2)
		}
		if timedOut && byCaller {
			// The caller's own deadline was shorter than Timeout: that says
			// nothing of Redis. This caller goes without; nobody falls back.
			return
		}
		l.downTill.Store(got.Add(l.cfg.RetryAfter).UnixNano())
		if !l.down.Swap(true) {
			l.fallbacks.Add(1)
			l.mu.Lock()
			l.share, l.shareAt = 0, time.Time{}
			if !l.calm.Load() && l.use > 0 {
				l.share = l.use * (1 + l.cfg.Headroom)
			}
			l.mu.Unlock()
		}
		return
	}
	if l.down.Swap(false) {
		l.rejoins.Add(1)
	}
}

// run runs the script, returning within timeout whatever the client's own
// timeouts (go-redis honours a context's deadline only with
// ContextTimeoutEnabled): a command still in flight then finishes in the
// background, tracked for Close.
func (l *Limiter) run(timeout time.Duration, n [4]int64, bound string, waited, want int, starved int64) ([]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	ch := make(chan answer, 1)
	if !l.spawn(func() {
		defer cancel()
		res, err := stepScript.Run(ctx, l.rdb, []string{l.key},
			n[0], n[1], n[2], n[3], bound, waited, want, starved, l.args[0], l.args[1], l.args[2], l.args[3], l.args[4], l.args[5], l.args[6], l.args[7]).Slice()
		ch <- answer{res, err}
	}) {
		cancel()
		return nil, errClosed
	}
	return await(ctx, ch, timeout)
}

// answer is what a command run in the background gives back.
type answer struct {
	res []any
	err error
}

// await returns the answer sent on ch, or a timeout error once ctx is done
// without one. An answer already sent wins over a done ctx: the goroutine
// running the command cancels ctx as soon as it has answered, and a select
// with both ready picks one at random. Under CPU load (16 processes, Redis
// and the service on 2 cores) the waiting goroutine often ran only after
// both, and half of those answers became "no answer within 100ms" and a
// fallback for a second: 0–9 a run, each a burst of throttles.
func await(ctx context.Context, ch <-chan answer, timeout time.Duration) ([]any, error) {
	select {
	case a := <-ch:
		return a.res, a.err
	case <-ctx.Done():
		select {
		case a := <-ch:
			return a.res, a.err
		default:
			return nil, fmt.Errorf("redisretry: no answer from Redis within %v: %w", timeout, context.DeadlineExceeded)
		}
	}
}

// apply takes the script's answer: the fleet's rate, whether it is calm,
// and the slots leased (first slot and spacing in µs from the server's now,
// taken as got).
func (l *Limiter) apply(got time.Time, res []any) error {
	if len(res) != 9 {
		return fmt.Errorf("redisretry: script answered %d values, want 9", len(res))
	}
	num := func(i int) (float64, error) {
		switch v := res[i].(type) {
		case string:
			return strconv.ParseFloat(v, 64)
		case int64:
			return float64(v), nil
		}
		return 0, fmt.Errorf("redisretry: script value %d is %T", i, res[i])
	}
	var x [9]float64
	for i := range x {
		v, err := num(i)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("redisretry: bad script value %d: %v (%v)", i, res[i], err)
		}
		x[i] = v
	}
	rate, calm, first, spacing, n, repaired, free, fin := x[0], x[1] == 1, x[2], x[3], int(x[4]), x[5] == 1, x[6], x[8]
	if repaired {
		l.repairs.Add(1)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rate = rate
	l.calm.Store(calm)
	if !calm {
		l.throttledCalm.Store(false) // the fleet paces now
	}
	if calm {
		l.slots = l.slots[:0]
		l.starved = time.Time{}
		l.bound.Store(0)
		l.boundSrv.Store(nil)
		return nil
	}
	if b, ok := res[7].(string); ok {
		if old := l.boundSrv.Swap(&b); old == nil || *old != b {
			end := time.Duration(fin * float64(time.Microsecond))
			l.bound.Store(got.Add(end).UnixNano())
			l.life.Lock()
			if !l.closed.Load() {
				if l.tick == nil {
					l.tick = time.AfterFunc(end+time.Millisecond, l.periodReport)
				} else {
					l.tick.Reset(end + time.Millisecond)
				}
			}
			l.life.Unlock()
			// Answers counted after the old end are before the new one.
			l.acc.Add(l.accAfter.Swap(0))
			l.thr.Add(l.thrAfter.Swap(0))
		}
	}
	l.nextAt = got.Add(time.Duration(first * float64(time.Microsecond)))
	// The script leases no slot more than Lease ahead (more for a process
	// that starves): no lease is asked for before the line's next free
	// slot is that close.
	l.leaseAt = got.Add(time.Duration(free*float64(time.Microsecond)) - l.cfg.Lease)
	if !l.lastLease.IsZero() {
		if el := got.Sub(l.lastLease).Seconds(); el > 0 {
			w := min(el/l.cfg.Interval.Seconds(), 1) // smoothed over about a period
			l.use += w * (float64(l.used)/el - l.use)
		}
	}
	l.used, l.lastLease = 0, got
	if n > 0 {
		l.demand = 0
		l.starved = time.Time{}
		l.leased.Add(uint64(n))
		for i := range n {
			l.pushSlot(got.Add(time.Duration((first + float64(i)*spacing) * float64(time.Microsecond))))
		}
	}
	return nil
}

// compile-time check
var _ retry.Limiter = (*Limiter)(nil)
