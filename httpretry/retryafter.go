package httpretry

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxHintSeconds bounds what the parsers return before the Policy's own
// clamp (MaxHint): about 292 years do not fit a time.Duration.
const maxHintSeconds = math.MaxInt64 / int64(time.Second)

// ParseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): either
// delta-seconds (a non-negative integer) or an HTTP-date, taken relative to
// now. A date in the past means "now" (0). Malformed or negative values
// return false. Huge values saturate instead of overflowing; the Policy's
// MaxHint then clamps them.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		return seconds(v), true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if !t.After(now) {
		return 0, true
	}
	return t.Sub(now), true
}

// ParseAmzRetryAfter reads the x-amz-retry-after header: a non-negative
// integer number of milliseconds. Malformed or negative values return false.
func ParseAmzRetryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if !isDigits(v) {
		return 0, false
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64, true
	}
	return time.Duration(ms) * time.Millisecond, true
}

// Hint returns the server's delay hint in h: x-amz-retry-after if present
// and valid, else Retry-After. The retry loop treats it as a floor over its
// own delay; a zero hint (or a date in the past) therefore means "the
// backoff", not "at once".
func Hint(h http.Header, now time.Time) (time.Duration, bool) {
	d, ok, _ := hint(h, now)
	return d, ok
}

// hint is Hint, also saying whether the hint is x-amz-retry-after.
func hint(h http.Header, now time.Time) (d time.Duration, ok, amz bool) {
	if v := h.Get("X-Amz-Retry-After"); v != "" {
		if d, ok := ParseAmzRetryAfter(v); ok {
			return d, true, true
		}
	}
	if v := h.Get("Retry-After"); v != "" {
		d, ok := ParseRetryAfter(v, now)
		return d, ok, false
	}
	return 0, false, false
}

func isDigits(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func seconds(v string) time.Duration {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n > maxHintSeconds {
		return math.MaxInt64
	}
	return time.Duration(n) * time.Second
}
