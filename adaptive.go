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
	def(&c.Probe, 0.5)
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

	mu      sync.Mutex
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
	first      time.Time
	nextUpdate time.Time
	slots      []goodputSlot
	throttled  bool // a throttle in the current interval
}

type goodputSlot struct {
	start    time.Time
	accepted int
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
	*l = AdaptiveLimiter{cfg: cfg, started: true}
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

// ReserveAt takes a send slot for an attempt at now and returns how long to
// wait before sending. If deadline is not zero and the slot would begin
// after it, nothing is taken and ok is false: don't wait into a certain
// failure.
func (l *AdaptiveLimiter) ReserveAt(now, deadline time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start(now)
	if !l.enabled {
		return 0, true
	}
	l.refill(now)
	t := l.tokens - 1
	if t < 0 {
		wait = time.Duration(-t / l.rate * float64(time.Second))
	}
	if !deadline.IsZero() && now.Add(wait).After(deadline) {
		return wait, false
	}
	l.tokens = t
	return wait, true
}

// CancelAt returns a slot taken by ReserveAt that will not be used.
func (l *AdaptiveLimiter) CancelAt(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.enabled {
		l.refill(now)
		l.tokens = min(l.capacity, l.tokens+1)
	}
}

// Wait waits for a send slot, or returns ctx's error at once if ctx ends
// first, or false at once if the slot would begin after ctx's deadline.
func (l *AdaptiveLimiter) Wait(ctx context.Context) (ok bool, err error) {
	now := time.Now()
	dl, _ := ctx.Deadline()
	wait, ok := l.ReserveAt(now, dl)
	if !ok || wait <= 0 {
		return ok, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return true, nil
	case <-ctx.Done():
		l.CancelAt(time.Now())
		return false, context.Cause(ctx)
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
	if throttled {
		l.throttled = true
		if !l.enabled {
			// First throttle: start at the accepted rate so far.
			l.enabled = true
			l.setRate(now, l.acceptedRate(now))
			l.nextUpdate = now.Add(l.cfg.Interval)
			l.throttled = false
		}
	} else {
		l.count(now)
	}
	for !now.Before(l.nextUpdate) {
		if l.enabled {
			acc := l.acceptedRate(l.nextUpdate)
			if l.throttled {
				l.setRate(l.nextUpdate, acc*(1+l.cfg.Headroom))
			} else {
				l.setRate(l.nextUpdate, max(l.rate, acc)*(1+l.cfg.Probe))
			}
		}
		l.throttled = false
		l.nextUpdate = l.nextUpdate.Add(l.cfg.Interval)
		if now.Sub(l.nextUpdate) > l.cfg.Window { // long silence: skip ahead
			l.nextUpdate = now.Add(l.cfg.Interval)
		}
	}
}

func (l *AdaptiveLimiter) count(now time.Time) {
	n := len(l.slots)
	if n > 0 && now.Sub(l.slots[n-1].start) < l.cfg.Interval/4 {
		l.slots[n-1].accepted++
	} else {
		l.slots = append(l.slots, goodputSlot{start: now, accepted: 1})
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
	n := 0
	for _, s := range l.slots {
		if now.Sub(s.start) <= l.cfg.Window {
			n += s.accepted
		}
	}
	span := min(l.cfg.Window, now.Sub(l.first))
	span = max(span, l.cfg.Interval)
	return float64(n) / span.Seconds()
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
