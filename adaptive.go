package retry

import (
	"context"
	"math"
	"sync"
	"time"
)

// Algorithm selects how an AdaptiveLimiter sets its send rate.
type Algorithm uint8

const (
	// Goodput, the default, sends at (1 + Headroom) times the rate of
	// accepted (not throttled) responses measured over Window, updated every
	// Interval; while no throttle is seen in an interval it probes upward by
	// Probe. A throttled service is then kept full while only about Headroom
	// of the attempts are throttled. See BENCHMARKS.md for the measurements
	// behind it.
	Goodput Algorithm = iota
	// CUBIC is the AWS SDKs' adaptive retry mode, reproduced exactly
	// (aws-sdk-go-v2 aws/retry/adaptive_ratelimit.go): on a throttle the rate
	// becomes β·min(measured, current); after it, the rate follows
	// C·(t − W)³ + lastMax, W = ∛(lastMax·(1−β)/C), and never exceeds twice
	// the measured send rate (0.5 s buckets, smoothing 0.8).
	CUBIC
)

// String returns "goodput" or "cubic".
func (a Algorithm) String() string {
	if a == CUBIC {
		return "cubic"
	}
	return "goodput"
}

// LimiterConfig configures an AdaptiveLimiter. Zero fields take the defaults
// given for each.
type LimiterConfig struct {
	Algorithm Algorithm

	// MinRate is the lowest send rate, in attempts per second (default 0.5,
	// the AWS SDKs' minimum fill rate).
	MinRate float64
	// Burst is the send bucket's size in seconds of the current rate
	// (default 1 s for CUBIC, as the AWS SDKs; 0.05 s for Goodput).
	Burst float64

	// CUBIC parameters (defaults from the AWS SDKs).
	Beta          float64 // multiplicative decrease, default 0.7
	ScaleConstant float64 // C, default 0.4
	Smooth        float64 // weight of the newest measured-rate bucket, default 0.8

	// Goodput parameters.
	Headroom float64       // default 0.05: send 5 % above the accepted rate
	Probe    float64       // default 0.5: growth per quiet interval
	Interval time.Duration // default 100 ms: how often the rate is updated
	Window   time.Duration // default 500 ms: span of the accepted-rate measure
}

// AWSAdaptive is the configuration of the AWS SDKs' adaptive retry mode.
var AWSAdaptive = LimiterConfig{Algorithm: CUBIC}

func (c LimiterConfig) withDefaults() LimiterConfig {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.MinRate, 0.5)
	if c.Algorithm == CUBIC {
		def(&c.Burst, 1)
	} else {
		def(&c.Burst, 0.05)
	}
	def(&c.Beta, 0.7)
	def(&c.ScaleConstant, 0.4)
	def(&c.Smooth, 0.8)
	def(&c.Headroom, 0.05)
	def(&c.Probe, 0.05)
	if c.Interval == 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.Window == 0 {
		c.Window = 500 * time.Millisecond
	}
	return c
}

// Validate reports whether the configuration is in range.
func (c LimiterConfig) Validate() error {
	if c.Algorithm > CUBIC {
		return fieldError("LimiterConfig.Algorithm", c.Algorithm, "must be Goodput or CUBIC")
	}
	for _, f := range [...]struct {
		name   string
		v      float64
		lo, hi float64
	}{
		{"MinRate", c.MinRate, 0, math.MaxFloat64}, {"Burst", c.Burst, 0, 3600},
		{"Beta", c.Beta, 0, 1}, {"ScaleConstant", c.ScaleConstant, 0, math.MaxFloat64},
		{"Smooth", c.Smooth, 0, 1}, {"Headroom", c.Headroom, 0, 10}, {"Probe", c.Probe, 0, 10},
	} {
		if math.IsNaN(f.v) || f.v < f.lo || f.v > f.hi {
			return fieldError("LimiterConfig."+f.name, f.v, "out of range (0 means the default)")
		}
	}
	if c.Interval < 0 || c.Window < 0 || (c.Window > 0 && c.Interval > c.Window) {
		return fieldError("LimiterConfig.Interval", c.Interval, "must be ≥ 0 and ≤ Window")
	}
	return nil
}

// AdaptiveLimiter is a client-side send-rate limiter that adapts to
// throttling: unlimited until the first throttle, then every attempt — first
// attempts too — waits for a slot of a token bucket whose rate follows the
// service's answers. One limiter is shared by all callers of one resource (a
// table, a host); it is safe for concurrent use. Methods ending in At take
// the time as an argument, for simulation.
type AdaptiveLimiter struct {
	cfg LimiterConfig
	mu  sync.Mutex
	limiterState
}

// limiterState is everything ResetAt clears.
type limiterState struct {
	started bool
	enabled bool
	// send bucket
	rate       float64
	capacity   float64
	tokens     float64
	lastRefill time.Time

	// CUBIC state (names as in the AWS SDKs)
	calculatedRate   float64
	measuredTxRate   float64
	lastTxRateBucket float64
	requestCount     int64
	lastMaxRate      float64
	lastThrottleTime time.Time
	timeWindow       float64

	// Goodput state
	first       time.Time
	nextUpdate  time.Time
	peak        float64 // accepted rate when last throttled
	calibrating bool    // the first interval after the first throttle
	quiet       int     // busy intervals without a throttle since the last one
	sent        int     // slots used in the current interval
	issued      uint64  // Goodput line: last ticket issued
	served      float64 // Goodput line: tickets served so far (virtual)
	lastServe   time.Time
	slots       []goodputSlot
	throttled   bool // a throttle in the current interval
}

type goodputSlot struct {
	start    time.Time
	accepted int
	answered int
}

// NewAdaptiveLimiter returns a limiter, or an error naming a field out of
// range.
func NewAdaptiveLimiter(cfg LimiterConfig) (*AdaptiveLimiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &AdaptiveLimiter{cfg: cfg.withDefaults()}, nil
}

// Validate reports whether the limiter's configuration is in range.
func (l *AdaptiveLimiter) Validate() error { return l.cfg.Validate() }

// ResetAt starts the limiter afresh at now (unlimited, no history). A new
// limiter starts at its first use.
func (l *AdaptiveLimiter) ResetAt(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resetLocked(now)
}

func (l *AdaptiveLimiter) resetLocked(now time.Time) {
	cfg := l.cfg
	l.limiterState = limiterState{started: true}
	l.lastTxRateBucket = math.Floor(unixSeconds(now))
	l.lastThrottleTime = now
	l.first = now
	l.nextUpdate = now.Add(cfg.Interval)
}

func (l *AdaptiveLimiter) start(now time.Time) {
	if !l.started {
		l.resetLocked(now)
	}
}

// Rate returns the current send rate in attempts per second, and false while
// the limiter is not limiting (before the first throttle).
func (l *AdaptiveLimiter) Rate() (float64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate, l.enabled
}

// MeasuredRate returns the CUBIC algorithm's smoothed send-rate measure.
func (l *AdaptiveLimiter) MeasuredRate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.measuredTxRate
}

func (l *AdaptiveLimiter) refill(now time.Time) {
	if l.lastRefill.IsZero() {
		l.lastRefill = now
		return
	}
	if now.After(l.lastRefill) {
		l.tokens = min(l.capacity, l.tokens+now.Sub(l.lastRefill).Seconds()*l.rate)
		l.lastRefill = now
	}
}

func (l *AdaptiveLimiter) setRate(now time.Time, r float64) {
	l.refill(now)
	l.rate = max(r, l.cfg.MinRate)
	l.capacity = max(1, l.rate*l.cfg.Burst)
	l.tokens = min(l.tokens, l.capacity)
}

// TakeAt asks for a send slot for an attempt at now. It returns how long to
// wait first and, for the Goodput algorithm, a ticket: a place in line.
//
//   - wait == 0: send now.
//   - wait > 0 and ticket != 0 (Goodput): you hold a place in a FIFO line.
//     After waiting, call DueAt for what remains (the rate may have changed
//     meanwhile, in either direction), until it returns 0; then send.
//   - wait > 0 and ticket == 0 (CUBIC): nothing is held; call TakeAt again
//     after waiting, as the AWS SDKs poll their token bucket.
//   - !ok: the slot would begin after deadline (zero: none); nothing is
//     taken. Don't wait into a certain failure.
func (l *AdaptiveLimiter) TakeAt(now, deadline time.Time) (wait time.Duration, ticket uint64, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start(now)
	if l.cfg.Algorithm == Goodput {
		l.goodputTick(now)
	}
	if !l.enabled {
		return 0, 0, true
	}
	if l.cfg.Algorithm == Goodput {
		return l.takeTicket(now, deadline)
	}
	l.refill(now)
	if l.tokens >= 1 {
		l.tokens--
		return 0, 0, true
	}
	wait = max(time.Duration((1-l.tokens)/l.rate*float64(time.Second)), 1)
	if !deadline.IsZero() && now.Add(wait).After(deadline) {
		return wait, 0, false
	}
	return wait, 0, true
}

// takeTicket issues the next place in line. Places are served at the
// current rate, with up to Burst seconds of unused rate as credit; since a
// place's time is computed when it is asked for (DueAt), a rate change
// applies at once to everyone waiting.
func (l *AdaptiveLimiter) takeTicket(now, deadline time.Time) (time.Duration, uint64, bool) {
	l.advance(now)
	t := l.issued + 1
	wait := l.due(t)
	// Refuse only a certain failure: the slot, at the best rate known to
	// hold (the capacity measured last), would still begin after the
	// deadline. While the capacity is unknown the rate may grow quickly, so
	// nothing is certain and nothing is refused.
	if !deadline.IsZero() && l.peak > 0 {
		best := max(l.rate, l.peak)
		if full := time.Duration((float64(t) - 1 - l.served) / best * float64(time.Second)); now.Add(full).After(deadline) {
			return full, 0, false
		}
	}
	l.issued = t
	if wait <= 0 {
		l.sent++
		return 0, 0, true
	}
	return wait, t, true
}

func (l *AdaptiveLimiter) advance(now time.Time) {
	if now.After(l.lastServe) {
		if !l.lastServe.IsZero() {
			l.served += now.Sub(l.lastServe).Seconds() * l.rate
		}
		l.lastServe = now
	}
	l.served = min(l.served, float64(l.issued)+max(1, l.rate*l.cfg.Burst))
}

// due is how long ticket t waits at the current rate, but at most one
// Interval: a holder wakes at least once per rate update, so a rate that
// rose is used at once.
func (l *AdaptiveLimiter) due(t uint64) time.Duration {
	d := (float64(t) - 1 - l.served) / l.rate
	if d <= 0 {
		return 0
	}
	return min(max(time.Duration(d*float64(time.Second)), 1), l.cfg.Interval)
}

// LineWaitAt returns how long an attempt that joined the line at now would
// wait for its slot at the current rate (0 when not limiting, and always 0
// for CUBIC, which has no line).
func (l *AdaptiveLimiter) LineWaitAt(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.enabled || l.cfg.Algorithm != Goodput {
		return 0
	}
	l.advance(now)
	d := (float64(l.issued) - l.served) / l.rate
	if d <= 0 {
		return 0
	}
	return time.Duration(d * float64(time.Second))
}

// DueAt returns how long the holder of ticket (from TakeAt) must still wait
// at now; 0 means send now.
func (l *AdaptiveLimiter) DueAt(now time.Time, ticket uint64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.enabled || l.cfg.Algorithm != Goodput {
		return 0
	}
	l.goodputTick(now)
	l.advance(now)
	w := l.due(ticket)
	if w == 0 {
		l.sent++
	}
	return w
}

// CancelAt gives up a ticket that will not be used. Its place in line
// passes unused (a gap of 1/rate): the price of O(1) bookkeeping.
func (l *AdaptiveLimiter) CancelAt(time.Time, uint64) {}

// Wait waits for a send slot. It returns false at once, taking nothing, if
// the slot would begin after ctx's deadline, and ctx's cause if ctx ends
// while waiting.
func (l *AdaptiveLimiter) Wait(ctx context.Context) (ok bool, err error) {
	dl, _ := ctx.Deadline()
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	wait, ticket, ok := l.TakeAt(time.Now(), dl)
	for {
		if !ok {
			return false, nil
		}
		if wait <= 0 {
			return true, nil
		}
		if err := sleep(ctx, &t, wait); err != nil {
			l.CancelAt(time.Now(), ticket)
			return false, err
		}
		if ticket != 0 {
			wait = l.DueAt(time.Now(), ticket)
		} else {
			wait, ticket, ok = l.TakeAt(time.Now(), dl)
		}
	}
}

// UpdateAt feeds the outcome of an attempt answered at now: throttled or not.
// Every answered attempt should be reported, successes included.
func (l *AdaptiveLimiter) UpdateAt(now time.Time, throttled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start(now)
	if l.cfg.Algorithm == CUBIC {
		l.cubicUpdate(now, throttled)
	} else {
		l.goodputUpdate(now, throttled)
	}
}

// Update is UpdateAt(time.Now(), throttled).
func (l *AdaptiveLimiter) Update(throttled bool) { l.UpdateAt(time.Now(), throttled) }

// --- CUBIC, as the AWS SDKs ---

func (l *AdaptiveLimiter) cubicUpdate(now time.Time, throttled bool) {
	l.updateMeasuredRate(now)
	if throttled {
		rateToUse := l.measuredTxRate
		if l.enabled {
			rateToUse = math.Min(l.measuredTxRate, l.rate)
		}
		l.lastMaxRate = rateToUse
		l.calculateTimeWindow()
		l.lastThrottleTime = now
		l.calculatedRate = rateToUse * l.cfg.Beta
		l.enabled = true
	} else {
		l.calculateTimeWindow()
		l.calculatedRate = l.cubicSuccess(now)
	}
	l.setRate(now, math.Min(l.calculatedRate, 2*l.measuredTxRate))
}

func (l *AdaptiveLimiter) cubicSuccess(t time.Time) float64 {
	dt := t.Sub(l.lastThrottleTime).Seconds()
	return l.cfg.ScaleConstant*math.Pow(dt-l.timeWindow, 3) + l.lastMaxRate
}

func (l *AdaptiveLimiter) calculateTimeWindow() {
	l.timeWindow = math.Cbrt(l.lastMaxRate * (1 - l.cfg.Beta) / l.cfg.ScaleConstant)
}

func (l *AdaptiveLimiter) updateMeasuredRate(now time.Time) {
	bucket := math.Floor(unixSeconds(now)*2) / 2
	l.requestCount++
	if bucket > l.lastTxRateBucket {
		current := float64(l.requestCount) / (bucket - l.lastTxRateBucket)
		l.measuredTxRate = current*l.cfg.Smooth + l.measuredTxRate*(1-l.cfg.Smooth)
		l.requestCount = 0
		l.lastTxRateBucket = bucket
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// --- Goodput ---

func (l *AdaptiveLimiter) goodputUpdate(now time.Time, throttled bool) {
	l.count(now, !throttled)
	if throttled {
		l.throttled = true
		if !l.enabled {
			// First throttle: start at the accepted rate so far.
			// The capacity is unknown yet (peak 0): quiet intervals grow the
			// rate quickly until a throttled one measures it.
			l.enabled = true
			// Start from what was accepted, or, if the sample is too small
			// to say (the very first answers were throttles), from β of
			// what was answered.
			l.peak = 0
			acc, ans := l.rates(now)
			l.setRate(now, max(acc, ans*l.cfg.Beta))
			// That estimate may rest on a handful of answers (many clients
			// starting at once, still connecting): the first full interval
			// calibrates it.
			l.calibrating = true
			l.nextUpdate = now.Add(l.cfg.Interval)
			l.throttled = false
		}
	}
	l.goodputTick(now)
}

// goodputTick closes every interval that ended by now. An interval with a
// throttle sets the rate to (1+Headroom)·accepted, but never raises it and
// never cuts it below β·rate in one step, and remembers the accepted rate as the capacity seen
// (peak). A quiet interval grows the rate: quickly (×(1+4·Probe)) back up to
// the peak, then by Probe to find new capacity. Ticks also run when an
// attempt asks for a slot, so a rate cut low recovers even when few answers
// come back.
func (l *AdaptiveLimiter) goodputTick(now time.Time) {
	for !now.Before(l.nextUpdate) {
		if l.enabled {
			at := l.nextUpdate
			acc := l.acceptedRate(at)
			if l.calibrating {
				// Capacity stays unknown (peak 0): busy intervals double the
				// rate until a throttled one measures it. An interval with
				// too few answers to say anything (clients still connecting)
				// does not end the calibration.
				last, answers := l.acceptedSince(at.Add(-l.cfg.Interval), at)
				if answers >= minCalibration {
					l.calibrating = false
				}
				l.setRate(at, max(l.rate, last))
			} else if l.throttled {
				// Never raise the rate on a throttle: the accepted count of a
				// first throttled interval includes the service's burst.
				l.peak = min(acc, l.rate)
				l.setRate(at, max(min(acc*(1+l.cfg.Headroom), l.rate), l.rate*l.cfg.Beta))
			} else if float64(l.sent) < 0.8*l.rate*l.cfg.Interval.Seconds() && float64(l.issued) <= l.served {
				// Not limited by us: the quiet says nothing about capacity
				// (RFC 7661's rule for an application-limited sender).
			} else if l.peak == 0 {
				l.setRate(at, l.rate*2) // slow start, as TCP's: double per interval
			} else if l.rate < l.peak {
				l.setRate(at, min(l.peak, l.rate*(1+4*l.cfg.Probe)))
			} else {
				// At or above the measured capacity: probe gently at first
				// (a plateau, as CUBIC has around its last maximum), faster
				// as quiet intervals add up and the capacity has likely grown.
				l.quiet++
				l.setRate(at, l.rate*(1+l.cfg.Probe*float64(min(l.quiet, 8))/8))
			}
			if l.throttled {
				l.quiet = 0
			}
		}
		l.throttled = false
		l.sent = 0
		l.nextUpdate = l.nextUpdate.Add(l.cfg.Interval)
		if now.Sub(l.nextUpdate) > l.cfg.Window { // long silence: skip ahead
			l.nextUpdate = now.Add(l.cfg.Interval)
		}
	}
}

func (l *AdaptiveLimiter) count(now time.Time, accepted bool) {
	a := 0
	if accepted {
		a = 1
	}
	n := len(l.slots)
	if n > 0 && now.Sub(l.slots[n-1].start) < l.cfg.Interval/4 {
		l.slots[n-1].accepted += a
		l.slots[n-1].answered++
	} else {
		l.slots = append(l.slots, goodputSlot{start: now, accepted: a, answered: 1})
	}
	// drop slots older than the window
	i := 0
	for i < len(l.slots) && now.Sub(l.slots[i].start) > l.cfg.Window {
		i++
	}
	if i > 0 {
		l.slots = append(l.slots[:0], l.slots[i:]...)
	}
}

// acceptedRate is the accepted responses per second over the window ending
// at now (or since the first use, if shorter, but never under Interval).
func (l *AdaptiveLimiter) acceptedRate(now time.Time) float64 {
	acc, _ := l.rates(now)
	return acc
}

// minCalibration is the fewest answers in an interval that calibrate the
// first estimate of the rate.
const minCalibration = 10

// acceptedSince returns the accepted responses per second in [from, to], and
// how many answers (accepted or not) came in it.
func (l *AdaptiveLimiter) acceptedSince(from, to time.Time) (rate float64, answers int) {
	n := 0
	for _, s := range l.slots {
		if !s.start.Before(from) && !s.start.After(to) {
			n += s.accepted
			answers += s.answered
		}
	}
	return float64(n) / to.Sub(from).Seconds(), answers
}

// rates returns the accepted and the answered responses per second.
func (l *AdaptiveLimiter) rates(now time.Time) (accepted, answered float64) {
	n, m := 0, 0
	for _, s := range l.slots {
		if now.Sub(s.start) <= l.cfg.Window {
			n += s.accepted
			m += s.answered
		}
	}
	span := max(min(l.cfg.Window, now.Sub(l.first)), l.cfg.Interval).Seconds()
	return float64(n) / span, float64(m) / span
}

// LimiterSet is a keyed set of adaptive limiters — one per table, per host —
// created on first use with one configuration. It is safe for concurrent
// use. Keys are never evicted: key by a bounded set (hosts, tables), not by
// request.
type LimiterSet struct {
	cfg LimiterConfig
	m   sync.Map // string → *AdaptiveLimiter
}

// NewLimiterSet returns an empty set, or an error if cfg is out of range.
func NewLimiterSet(cfg LimiterConfig) (*LimiterSet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &LimiterSet{cfg: cfg}, nil
}

// Get returns the limiter for key, creating it on first use.
func (s *LimiterSet) Get(key string) *AdaptiveLimiter {
	if v, ok := s.m.Load(key); ok {
		return v.(*AdaptiveLimiter)
	}
	v, _ := s.m.LoadOrStore(key, &AdaptiveLimiter{cfg: s.cfg.withDefaults()})
	return v.(*AdaptiveLimiter)
}
