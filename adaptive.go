package retry

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Algorithm selects how an AdaptiveLimiter sets its send rate.
type Algorithm uint8

const (
	// Goodput, the default, paces attempts at the rate the service accepts
	// from this client plus a small headroom, and finds that rate again on
	// its own whatever happened before. It decides once per Interval (a
	// clock common to all clients, so that a larger client meets throttles
	// in more periods than a smaller one):
	//
	//   - slow start, until a throttled period has accepted something: the
	//     rate doubles per period that brought an accepted answer (or
	//     blind, no further than the rate last refused outright); a period
	//     of throttles only halves what was actually sent, and so does the
	//     first wave (the period in which limiting began, holding the
	//     answers to more than twice the sends its pace could carry: every
	//     writer's first attempt at once), whatever the service accepted of
	//     it — which of a burst's sends it accepts depends on which came
	//     first, not on this client's share. A client whose periods hold
	//     one answer each never sees both kinds in one period: its first
	//     period of throttles after an accepted answer takes the accepted
	//     rate since limiting began as the measure;
	//   - a throttled period sets rate·(1+Headroom)·(1−p) + a, p the
	//     throttled fraction smoothed over about 50 answers (but never more
	//     than this period's), never below Beta·rate;
	//   - a throttle-free period in which the rate bound the sends (callers
	//     waited) and answers were accepted grows the rate by a probe that
	//     starts at Probe and doubles with each such period in a row (at
	//     low rates, where an accepted answer is rare evidence, by at least
	//     Probe·10/(answers per Interval)), plus a;
	//   - a period of failures only, or of no answers, changes nothing —
	//     except at a trickle (under one send per Interval, a client
	//     squeezed by others) after a second without any answer: then the
	//     rate regains ×(1 + Probe·10) per period, up to one send per
	//     Interval, so that a squeeze that ended is not learnt one rare
	//     answer at a time (it took ~40 s from 0.05/s).
	//
	// a is the additive term meant to make independent limiters converge to
	// a fair share: Fairness/√max(n, 25) of the rate per period, n the
	// answers a period holds at the rate — relatively larger for a smaller
	// client (a binomial law, increase ∝ rate^½ against a decrease ∝ rate:
	// Bansal and Balakrishnan 2001; Chiu and Jain 1989 for why a purely
	// multiplicative law would keep the ratio between clients).
	// BENCHMARKS.md measures it over the scenario matrix and with separate
	// processes: clients that start together share fairly (once the first
	// wave is not taken for a measure); a client that joins a service
	// others saturate converges slowly.
	//
	// No state waits on an event that may never come: every period ends by
	// time, on any call. After CalmAfter without a throttle while the rate
	// does not bind, the limiter stops limiting: it then costs an atomic load
	// and an atomic add per call, no lock and no clock.
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
// given for each; the zero LimiterConfig is the robust default (Goodput).
type LimiterConfig struct {
	Algorithm Algorithm

	// MinRate is the lowest send rate, in attempts per second (default 0.5
	// for CUBIC, the AWS SDKs' minimum fill rate; 0.05 for Goodput, so that
	// sixteen clients can share a service of 1/s).
	MinRate float64
	// Burst is the send bucket's size in seconds of the current rate
	// (default 1 s for CUBIC, as the AWS SDKs; 0.05 s for Goodput).
	Burst float64
	// Beta is the multiplicative decrease: CUBIC multiplies its rate by Beta
	// on each throttle (default 0.7, the AWS SDKs'); Goodput never cuts
	// below Beta times its rate in one period (default 0.5).
	Beta float64

	// CUBIC parameters (defaults from the AWS SDKs).
	ScaleConstant float64 // C, default 0.4
	Smooth        float64 // weight of the newest measured-rate bucket, default 0.8

	// Goodput parameters.
	Headroom float64       // default 0.03: send 3 % above the accepted rate
	Probe    float64       // default 0.02: first growth step above the last throttle
	Fairness float64       // default 0.15: the additive term's weight (see Goodput)
	Interval time.Duration // default 100 ms: the shortest decision period; 1 ms to 10 s
	// CalmAfter is how long without a throttle, the rate not binding, before
	// the limiter stops limiting (default 2 s).
	CalmAfter time.Duration
	// Window is the span over which the accepted rate is measured while the
	// limiter is calm, to start from when throttling begins (default 500 ms).
	Window time.Duration
}

// AWSAdaptive is the configuration of the AWS SDKs' adaptive retry mode.
var AWSAdaptive = LimiterConfig{Algorithm: CUBIC}

// Goodput's fixed constants.
const (
	// defaultWindow is LimiterConfig.Window's default.
	defaultWindow = 500 * time.Millisecond
	// maxPeriod bounds Interval.
	maxPeriod = 10 * time.Second
	// fairFloor: the additive term's relative size is at most
	// Fairness/√fairFloor, so that it stays small at low rates.
	fairFloor = 25
	// waveMin: a first wave holds more than twice this many answers (see
	// decide), so that a few answers at a low pace are not one.
	waveMin = 2
	// maxGrowth is the largest growth factor of one quiet period.
	maxGrowth = 2.0
	// smoothAnswers: the throttled fraction is smoothed over about this
	// many answers.
	smoothAnswers = 50
	// lowRateAnswers: below this many answers per Interval, growth per
	// accepted period is raised in proportion (see decide).
	lowRateAnswers = 10
	// silentFor: a limiter at a trickle (under one send per Interval) that
	// has had no answer, not even a throttle, for this long regains rate
	// with time (see decide).
	silentFor = time.Second
	// calmRoll: while calm, the clock is read every calmRoll accepted
	// answers to keep the accepted-rate measure recent.
	calmRoll = 256
)

func (c LimiterConfig) withDefaults() LimiterConfig {
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Algorithm == CUBIC {
		def(&c.MinRate, 0.5)
		def(&c.Burst, 1)
		def(&c.Beta, 0.7)
	} else {
		def(&c.MinRate, 0.05)
		def(&c.Burst, 0.05)
		def(&c.Beta, 0.5)
	}
	def(&c.ScaleConstant, 0.4)
	def(&c.Smooth, 0.8)
	def(&c.Headroom, 0.03)
	def(&c.Probe, 0.02)
	def(&c.Fairness, 0.15)
	if c.Interval == 0 {
		c.Interval = 100 * time.Millisecond
	}
	if c.CalmAfter == 0 {
		c.CalmAfter = 2 * time.Second
	}
	if c.Window == 0 {
		c.Window = defaultWindow
	}
	return c
}

// Validate reports whether the configuration is in range, naming the field.
func (c LimiterConfig) Validate() error {
	if c.Algorithm > CUBIC {
		return fieldError("LimiterConfig.Algorithm", c.Algorithm, "must be Goodput or CUBIC")
	}
	for _, f := range [...]struct {
		name   string
		v      float64
		lo, hi float64
		why    string
	}{
		{"MinRate", c.MinRate, 0, 1e9, "must be in [0, 1e9] attempts/s"},
		{"Burst", c.Burst, 0, 3600, "must be in [0, 3600] s"},
		{"Beta", c.Beta, 0, 1, "must be in [0, 1)"},
		{"ScaleConstant", c.ScaleConstant, 0, 1e9, "must be in [0, 1e9]"},
		{"Smooth", c.Smooth, 0, 1, "must be in [0, 1]"},
		{"Headroom", c.Headroom, 0, 1, "must be in [0, 1]"},
		{"Probe", c.Probe, 0, 1, "must be in [0, 1]"},
		{"Fairness", c.Fairness, 0, 10, "must be in [0, 10]"},
	} {
		if math.IsNaN(f.v) || f.v < f.lo || f.v > f.hi || (f.name == "Beta" && f.v == 1) {
			return fieldError("LimiterConfig."+f.name, f.v, f.why+" (0 means the default)")
		}
	}
	if c.Interval != 0 && (c.Interval < time.Millisecond || c.Interval > maxPeriod) {
		return fieldError("LimiterConfig.Interval", c.Interval, "must be in [1ms, 10s] (0 means the default 100ms)")
	}
	if c.CalmAfter < 0 {
		return fieldError("LimiterConfig.CalmAfter", c.CalmAfter, "must be ≥ 0 (0 means the default 2s)")
	}
	if c.Window != 0 && (c.Window < time.Millisecond || c.Window > time.Hour) {
		return fieldError("LimiterConfig.Window", c.Window, "must be in [1ms, 1h] (0 means the default 500ms)")
	}
	return nil
}

// AdaptiveLimiter is a client-side send-rate limiter that adapts to
// throttling: unlimited until the first throttle, then every attempt — first
// attempts too — waits for a place in a FIFO line served at a rate that
// follows the service's answers. One limiter is shared by all callers of one
// resource (a table, a host); it is safe for concurrent use. It implements
// Limiter; methods ending in At take the time as an argument, for
// simulation.
//
// The zero value is ready to use, with the default configuration (Goodput).
// A nil *AdaptiveLimiter never limits.
type AdaptiveLimiter struct {
	cfg LimiterConfig // as given; never changed, read without the lock
	c   LimiterConfig // cfg with defaults, set on first use under mu

	// The calm path: read and written without the lock.
	limiting atomic.Bool  // pacing (Goodput) or enabled (CUBIC)
	answered atomic.Int64 // answers (accepted or failed) counted while calm (Goodput)
	markNs   atomic.Int64 // when the calm measure was last rolled

	mu sync.Mutex
	limiterState
}

// limiterState is everything ResetAt clears.
type limiterState struct {
	started bool
	rate    float64

	// CUBIC's token bucket and state (names as in the AWS SDKs)
	capacity         float64
	tokens           float64
	lastRefill       time.Time
	calculatedRate   float64
	measuredTxRate   float64
	lastTxRateBucket float64
	requestCount     int64
	lastMaxRate      float64
	lastThrottleTime time.Time
	timeWindow       float64

	// Goodput's line: tickets 1..issued; served counts slots passed.
	issued    uint64
	served    float64
	lastServe time.Time

	// Goodput's control state
	measured    bool          // a throttled period has measured the share
	frac        float64       // the throttled fraction, smoothed
	refused     float64       // slow start: the rate of the last period refused outright
	quiet       int           // quiet, binding periods since the last throttle
	periodStart time.Time     // start of the current decision period
	acc, thr    int           // answers in the period
	sent        int           // slots granted in the period
	waited      bool          // some caller waited in line in the period
	lastThrot   time.Time     // end of the last throttled period
	lastAnswer  time.Time     // when the last answer came
	first       bool          // the period in which limiting began is open
	cumAcc      int           // unmeasured: accepted answers since the first period
	cumDur      time.Duration // unmeasured: the span they came in
	markCount   int64         // answered count at the last calm mark
	calmRate    float64       // answered rate over the last full calm window
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
func (l *AdaptiveLimiter) Validate() error {
	if l == nil {
		return nil
	}
	return l.cfg.Validate()
}

// Config returns the configuration in use, defaults applied.
func (l *AdaptiveLimiter) Config() LimiterConfig { return l.cfg.withDefaults() }

// ResetAt starts the limiter afresh at now (unlimited, no history). A new
// limiter starts at its first use.
func (l *AdaptiveLimiter) ResetAt(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.resetLocked(nowOr(now))
}

func (l *AdaptiveLimiter) resetLocked(now time.Time) {
	l.c = l.cfg.withDefaults() // the zero value gets its defaults here
	l.limiterState = limiterState{started: true}
	l.limiting.Store(false)
	l.lastTxRateBucket = math.Floor(unixSeconds(now))
	l.lastThrottleTime = now
	l.markCount = l.answered.Load()
	l.markNs.Store(now.UnixNano())
}

func (l *AdaptiveLimiter) start(now time.Time) {
	if !l.started {
		l.resetLocked(now)
	}
}

func (l *AdaptiveLimiter) goodput() bool { return l.cfg.Algorithm == Goodput }

// Rate returns the current send rate in attempts per second, and false while
// the limiter is not limiting.
func (l *AdaptiveLimiter) Rate() (float64, bool) {
	if l == nil {
		return 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate, l.limiting.Load()
}

// MeasuredRate returns the CUBIC algorithm's smoothed send-rate measure.
func (l *AdaptiveLimiter) MeasuredRate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.measuredTxRate
}

// ReserveAt asks for a send slot at now; see Limiter for the protocol.
// Goodput hands out places in a FIFO line (a ticket; poll WaitAt); CUBIC
// polls its token bucket as the AWS SDKs do (no ticket: call ReserveAt again
// after the wait). A slot that would begin after deadline (zero: none) is
// refused, taking nothing: don't wait into a certain failure.
func (l *AdaptiveLimiter) ReserveAt(now, earliest, deadline time.Time) (Ticket, time.Duration, bool) {
	if l == nil || (l.goodput() && !l.limiting.Load()) {
		// Calm: nothing to wait for but the delay.
		if !earliest.IsZero() {
			if w := earliest.Sub(nowOr(now)); w > 0 {
				return 0, w, true
			}
		}
		return 0, 0, true
	}
	now = nowOr(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start(now)
	if l.goodput() {
		l.tick(now)
		if !l.limiting.Load() {
			return 0, max(earliest.Sub(now), 0), true
		}
		return l.takeTicket(now, earliest, deadline)
	}
	if earliest.After(now) {
		return 0, earliest.Sub(now), true
	}
	if !l.limiting.Load() {
		return 0, 0, true
	}
	l.refill(now)
	if l.tokens >= 1 {
		l.tokens--
		return 0, 0, true
	}
	wait := max(time.Duration((1-l.tokens)/l.rate*float64(time.Second)), 1)
	if !deadline.IsZero() && now.Add(wait).After(deadline) {
		return 0, wait, false
	}
	return 0, wait, true
}

// takeTicket issues the next place in line, or asks the caller to come back
// later so that its place comes up when its delay ends (the delay and the
// line overlap).
func (l *AdaptiveLimiter) takeTicket(now, earliest, deadline time.Time) (Ticket, time.Duration, bool) {
	l.advance(now)
	ahead := float64(l.issued) - l.served // places ahead of a newcomer
	line := time.Duration(max(ahead, 0) / l.rate * float64(time.Second))
	if earliest.After(now) {
		if lead := earliest.Sub(now) - line; lead > 0 {
			return 0, lead, true
		}
	}
	if !deadline.IsZero() && ahead > 0 {
		// Refuse only a failure that is certain: the slot would begin after
		// the deadline even if the rate doubled every Interval meanwhile (the
		// fastest the law can grow).
		if best := l.bestCase(ahead); now.Add(best).After(deadline) {
			return 0, best, false
		}
	}
	l.issued++
	t := Ticket(l.issued)
	w := l.due(t)
	if w <= 0 {
		l.sent++
		return 0, 0, true
	}
	l.waited = true
	return t, w, true
}

// bestCase is how long ahead slots take to pass if the rate doubles every
// Interval from now on: Interval·log2(1 + ahead/(rate·Interval)).
func (l *AdaptiveLimiter) bestCase(ahead float64) time.Duration {
	per := l.rate * l.c.Interval.Seconds()
	return time.Duration(math.Log2(1+ahead/per) * float64(l.c.Interval))
}

// advance moves the line on to now: slots pass at the current rate, with up
// to Burst seconds of unused rate as credit.
func (l *AdaptiveLimiter) advance(now time.Time) {
	if now.After(l.lastServe) {
		if !l.lastServe.IsZero() {
			l.served += now.Sub(l.lastServe).Seconds() * l.rate
		}
		l.lastServe = now
	}
	l.served = min(l.served, float64(l.issued)+max(1, l.rate*l.c.Burst))
}

// due is how long ticket t waits at the current rate, but at most one
// Interval: a holder wakes at least once per decision, so a rate that rose
// is used at once.
func (l *AdaptiveLimiter) due(t Ticket) time.Duration {
	d := (float64(t) - 1 - l.served) / l.rate
	if d <= 0 {
		return 0
	}
	return min(max(time.Duration(d*float64(time.Second)), 1), l.c.Interval)
}

// WaitAt returns how long the holder of ticket t must still wait at now;
// 0 means send now (the slot is then used).
func (l *AdaptiveLimiter) WaitAt(now time.Time, t Ticket) time.Duration {
	if l == nil || t == 0 || !l.goodput() {
		return 0
	}
	now = nowOr(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tick(now)
	if !l.limiting.Load() {
		return 0
	}
	l.advance(now)
	w := l.due(t)
	if w == 0 {
		l.sent++
	} else {
		l.waited = true
	}
	return w
}

// CancelAt gives back a place in line that will not be used: everyone
// behind it moves up by one slot, so cancelled waiters leave no gap.
func (l *AdaptiveLimiter) CancelAt(now time.Time, t Ticket) {
	if l == nil || t == 0 || !l.goodput() {
		return
	}
	now = nowOr(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.limiting.Load() || uint64(t) > l.issued {
		return
	}
	l.advance(now)
	if float64(t) > l.served { // not yet due: its slot passes to the line
		if uint64(t) == l.issued {
			l.issued--
		} else {
			l.served++
		}
	}
}

// ObserveAt feeds the outcome of an attempt answered at now. Every answered
// attempt should be reported, successes included.
func (l *AdaptiveLimiter) ObserveAt(now time.Time, o Outcome) {
	if l == nil {
		return
	}
	if l.goodput() && o != OutcomeThrottled && !l.limiting.Load() {
		l.calmObserve(now, o)
		return
	}
	now = nowOr(now)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start(now)
	if l.cfg.Algorithm == CUBIC {
		l.cubicUpdate(now, o == OutcomeThrottled)
		return
	}
	l.goodputObserve(now, o)
}

// calmObserve counts an answer without the lock while the limiter
// is calm, and now and then rolls the window of the accepted-rate measure.
func (l *AdaptiveLimiter) calmObserve(now time.Time, o Outcome) {
	n := l.answered.Add(1)
	if now.IsZero() {
		if n%calmRoll != 0 {
			return
		}
		now = time.Now()
	} else if now.UnixNano()-l.markNs.Load() < int64(calmWindow(l.cfg.Window)) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start(now)
	l.roll(now)
}

// calmWindow is cfg.Window with its default, for the calm path, which
// reads the configuration as given (the defaulted copy is set under the
// lock).
func calmWindow(w time.Duration) time.Duration {
	if w == 0 {
		return defaultWindow
	}
	return w
}

// roll closes the calm measure's window if it is over.
func (l *AdaptiveLimiter) roll(now time.Time) {
	mark := time.Unix(0, l.markNs.Load())
	if span := now.Sub(mark); span >= l.c.Window {
		n := l.answered.Load()
		l.calmRate = float64(n-l.markCount) / span.Seconds()
		l.markCount = n
		l.markNs.Store(now.UnixNano())
	}
}

// Wait waits for a send slot. It returns false at once, taking nothing, if
// the slot would begin after ctx's deadline, and ctx's cause if ctx ends
// while waiting.
func (l *AdaptiveLimiter) Wait(ctx context.Context) (ok bool, err error) {
	return WaitSlot(ctx, l)
}

// WaitSlot runs the Limiter protocol on real timers until l grants a send
// slot, for hosts that own their retry loop (the AWS SDK's middleware). It
// returns false at once, holding nothing, if the slot would begin after
// ctx's deadline, and ctx's cause if ctx ends while waiting (the place in
// line is then given back).
func WaitSlot(ctx context.Context, l Limiter) (ok bool, err error) {
	var earliest time.Time
	dl, _ := ctx.Deadline()
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	ticket, wait, ok := l.ReserveAt(time.Now(), earliest, dl)
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
			wait = l.WaitAt(time.Now(), ticket)
		} else {
			ticket, wait, ok = l.ReserveAt(time.Now(), earliest, dl)
		}
	}
}

// Observe is ObserveAt(time.Time{}, o): the time is read only if needed.
func (l *AdaptiveLimiter) Observe(o Outcome) { l.ObserveAt(time.Time{}, o) }

// --- CUBIC, as the AWS SDKs ---

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

func (l *AdaptiveLimiter) setBucketRate(now time.Time, r float64) {
	l.refill(now)
	l.rate = max(r, l.c.MinRate)
	l.capacity = max(1, l.rate*l.c.Burst)
	l.tokens = min(l.tokens, l.capacity)
}

func (l *AdaptiveLimiter) cubicUpdate(now time.Time, throttled bool) {
	l.updateMeasuredRate(now)
	if throttled {
		rateToUse := l.measuredTxRate
		if l.limiting.Load() {
			rateToUse = math.Min(l.measuredTxRate, l.rate)
		}
		l.lastMaxRate = rateToUse
		l.calculateTimeWindow()
		l.lastThrottleTime = now
		l.calculatedRate = rateToUse * l.c.Beta
		l.limiting.Store(true)
	} else {
		l.calculateTimeWindow()
		l.calculatedRate = l.cubicSuccess(now)
	}
	l.setBucketRate(now, math.Min(l.calculatedRate, 2*l.measuredTxRate))
}

func (l *AdaptiveLimiter) cubicSuccess(t time.Time) float64 {
	dt := t.Sub(l.lastThrottleTime).Seconds()
	return l.c.ScaleConstant*math.Pow(dt-l.timeWindow, 3) + l.lastMaxRate
}

func (l *AdaptiveLimiter) calculateTimeWindow() {
	l.timeWindow = math.Cbrt(l.lastMaxRate * (1 - l.c.Beta) / l.c.ScaleConstant)
}

func (l *AdaptiveLimiter) updateMeasuredRate(now time.Time) {
	bucket := math.Floor(unixSeconds(now)*2) / 2
	l.requestCount++
	if bucket > l.lastTxRateBucket {
		current := float64(l.requestCount) / (bucket - l.lastTxRateBucket)
		l.measuredTxRate = current*l.c.Smooth + l.measuredTxRate*(1-l.c.Smooth)
		l.requestCount = 0
		l.lastTxRateBucket = bucket
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// --- Goodput ---

func (l *AdaptiveLimiter) goodputObserve(now time.Time, o Outcome) {
	if !l.limiting.Load() {
		// The first throttle: start pacing at the rate this client was
		// sending at while calm (the last full window, or the current one
		// if higher). The first throttled period then measures what the
		// service accepts of it.
		l.roll(now)
		mark := time.Unix(0, l.markNs.Load())
		cur := float64(l.answered.Load()-l.markCount) / max(now.Sub(mark), l.c.Interval).Seconds()
		l.setRate(max(l.calmRate, cur))
		l.limiting.Store(true)
		l.measured = false
		l.first = true
		l.cumAcc, l.cumDur = 0, 0
		l.frac, l.refused = 0, math.MaxFloat64
		l.quiet = 0
		l.issued, l.served, l.lastServe = 0, 0, now
		l.periodStart = now
		l.acc, l.thr, l.sent, l.waited = 0, 0, 0, false
		l.lastThrot = now
	}
	switch o {
	case OutcomeAccepted:
		l.acc++
	case OutcomeThrottled:
		l.thr++
	}
	l.lastAnswer = now
	l.tick(now)
}

func (l *AdaptiveLimiter) setRate(r float64) {
	l.rate = min(max(r, l.c.MinRate), 1e9)
}

// tick closes every decision period that ended by now. It runs on every
// call, answers or reservations, so the rate moves with time even when few
// answers come back: no state waits on an event that may never come.
func (l *AdaptiveLimiter) tick(now time.Time) {
	for l.limiting.Load() {
		p := l.c.Interval
		end := l.periodStart.Add(p)
		if now.Before(end) {
			return
		}
		l.advance(end)
		l.decide(end, p)
		l.periodStart = end
		if now.Sub(end) > 2*p { // a long silence is one quiet period
			l.periodStart = now
		}
	}
}

// fair is the additive term for a period of p at rate r: Fairness·√n
// answers per period, n = r·p, as a rate; relative to r it is Fairness/√n,
// at most Fairness/√fairFloor.
func (l *AdaptiveLimiter) fair(r float64, p time.Duration) float64 {
	n := r * p.Seconds()
	return r * l.c.Fairness / math.Sqrt(max(n, fairFloor))
}

// decide closes the period that ended at end and lasted p.
func (l *AdaptiveLimiter) decide(end time.Time, p time.Duration) {
	r := l.rate
	n := l.acc + l.thr
	binding := l.waited || float64(l.sent) >= 0.8*r*p.Seconds()
	f := 0.0
	if n > 0 {
		// The throttled fraction, smoothed over about smoothAnswers
		// answers: a period of many answers counts at once, one of a few
		// answers only a little.
		f = float64(l.thr) / float64(n)
		w := float64(n) / float64(n+smoothAnswers)
		l.frac += w * (f - l.frac)
	}
	// The period in which limiting began holds the answers to sends made
	// before it. If they are more than twice what the pace could carry, they
	// are a first wave (every writer's first attempt at once), and which of
	// them the service accepted says how it ordered a burst — which
	// process's sends came first — not what it accepts of this client's
	// pace.
	wave := l.first && float64(n) > 2*max(float64(l.sent), r*p.Seconds(), waveMin)
	firstP := l.first
	l.first = false
	switch {
	case l.thr > 0 && !l.measured:
		// The first throttled periods: the rate was a guess; take what the
		// service accepted. A period with nothing accepted measures
		// nothing, only "less": halve what was actually sent (answers
		// include attempts sent before limiting began).
		if acc := float64(l.acc) / p.Seconds(); l.acc > 0 && !wave {
			l.setRate(acc*(1+l.c.Headroom) + l.fair(acc, p))
			// The rate is now set from what was accepted: at it, about
			// Headroom/(1+Headroom) of the answers should be throttles. The
			// start-up storm's fraction would make every later throttle of
			// a client that gets few answers a deep cut.
			l.frac = l.c.Headroom / (1 + l.c.Headroom)
			// It is a measure only if the pace could carry a send in the
			// period: otherwise the answers came from sends made before,
			// and say only "at least this much"; slow start goes on.
			l.measured = max(float64(l.sent), r*p.Seconds()) >= 1
		} else {
			switch {
			case firstP:
				// Nothing accepted, or a first wave: start from half of
				// what was sent, answers included (they hold attempts sent
				// before limiting began). A wave's rate is the same for
				// clients with the same writers; taking each one's
				// accepted share of it started eight processes of 25
				// writers at 11–244 writes/s on a 1000/s service, and the
				// law keeps ratios for seconds: some finished at 0.24 of
				// the ideal time, others at 1.2.
				l.setRate(l.c.Beta * max(r, float64(n)/p.Seconds()))
			case l.cumAcc > 0:
				// Throttles only, after periods that brought accepted
				// answers but no throttle: a client of one answer per
				// period, which never sees both in one. Its share is the
				// accepted rate over the periods since limiting began.
				acc := float64(l.cumAcc) / (l.cumDur + p).Seconds()
				l.setRate(acc*(1+l.c.Headroom) + l.fair(acc, p))
				l.frac = l.c.Headroom / (1 + l.c.Headroom)
				l.measured = true
			default:
				// Refused outright: halve what was sent in the period, or
				// the rate if less. (Halving answers/Interval instead —
				// one answer in 100 ms counts as 10/s — held one-answer
				// clients at 5/s for good: thirteen one-writer processes
				// on a 9/s service were 80 % throttled, as with no
				// limiter at all.)
				l.setRate(l.c.Beta * min(r, float64(max(l.sent, n))/p.Seconds()))
			}
			if l.acc == 0 {
				l.refused = l.rate // no blind growth past a rate refused outright
			}
		}
		l.quiet = 0
		l.lastThrot = end
	case l.thr > 0:
		// Send Headroom above the accepted fraction of the traffic, plus
		// the fairness term. The fraction is the smoothed one, but never
		// more than this period's (a stale estimate must not over-cut).
		// The traffic is the rate, or what was actually sent if less (the
		// writers, not the rate, bound the sends: a cut of a rate far above
		// them would change nothing for periods).
		base := min(r, float64(max(l.sent, n))/p.Seconds())
		keep := (1 + l.c.Headroom) * (1 - min(l.frac, f))
		l.setRate(max(base*keep+l.fair(base*keep, p), l.c.Beta*base))
		l.quiet = 0
		l.lastThrot = end
	case !binding:
		if end.Sub(l.lastThrot) >= l.c.CalmAfter {
			// Long without a throttle, and the rate does not bind: stop
			// limiting. Throttles, if they come back, start it again from
			// the rate measured meanwhile.
			l.limiting.Store(false)
			l.markCount = l.answered.Load()
			l.markNs.Store(end.UnixNano())
			l.calmRate = 0
		}
	case !l.measured && l.acc > 0:
		l.setRate(r * maxGrowth) // slow start: double per accepted period
	case l.acc == 0 && r*p.Seconds() < 1 && end.Sub(l.lastAnswer) >= silentFor:
		// A trickle (under one send per period: a client squeezed by
		// others) that has heard nothing, not even a throttle, for
		// silentFor: at its rate the next answer may be many seconds away,
		// and each answer moves it only one step, so it would take that
		// long to learn that the squeeze is over. It regains with time
		// instead, by the low-rate boost's step per period, up to one
		// send per period; throttles, if the squeeze goes on, cut it again.
		l.setRate(min(r*(1+l.c.Probe*lowRateAnswers), 1/p.Seconds()))
	case !l.measured && n == 0:
		// Slow start without answers yet (a service saturated by others
		// answers nothing but throttles): grow blind, but not past the rate
		// last refused outright. (After the trickle rule: a client refused
		// down to a trickle, never measured, would otherwise stay there.)
		l.setRate(min(r*maxGrowth, max(r, l.refused)))
	case l.acc == 0:
		// No evidence either way: the rate stays.
	default:
		// A throttle-free period that carried answers: probe, gently at
		// first, doubling the step with each such period in a row. At low
		// rates (under lowRateAnswers answers per Interval) an accepted
		// period is rare evidence and counts for more.
		l.quiet++
		g := l.c.Probe * math.Pow(2, float64(l.quiet-1))
		g = max(g, l.c.Probe*lowRateAnswers/(r*p.Seconds()))
		l.setRate(r*(1+min(g, maxGrowth-1)) + l.fair(r, p))
	}
	// Until measured, count accepted answers over the periods that sent or
	// heard something (after the first, whose answers are older sends).
	if l.measured || firstP {
		l.cumAcc, l.cumDur = 0, 0
	} else if binding || n > 0 {
		l.cumAcc += l.acc
		l.cumDur += p
	}
	l.acc, l.thr, l.sent, l.waited = 0, 0, 0, false
}
