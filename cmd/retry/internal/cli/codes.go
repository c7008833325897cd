package cli

import (
	"fmt"
	"strconv"
	"strings"
)

// codeSet is a set of exit statuses written as "1,2,5-10".
type codeSet struct {
	ranges [][2]int
	text   string
}

func (c *codeSet) String() string { return c.text }

// Set adds the statuses in s: repeated flags accumulate
// (--retry-on 1 --retry-on 2 is --retry-on 1,2).
func (c *codeSet) Set(s string) error {
	var rs [][2]int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := parseCode(lo)
		if err != nil {
			return fmt.Errorf("%q: an exit status is an integer in 0-255 (write lists as 1,2,5-10)", part)
		}
		b := a
		if isRange {
			if b, err = parseCode(hi); err != nil {
				return fmt.Errorf("%q: an exit status is an integer in 0-255 (write lists as 1,2,5-10)", part)
			}
			if b < a {
				return fmt.Errorf("range %q: the end is below the start", part)
			}
		}
		rs = append(rs, [2]int{a, b})
	}
	c.ranges = append(c.ranges, rs...)
	if c.text != "" {
		c.text += ","
	}
	c.text += s
	return nil
}

func parseCode(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 255 {
		return 0, fmt.Errorf("%q: an exit status is an integer in 0-255 (write lists as 1,2,5-10)", s)
	}
	return n, nil
}

func (c *codeSet) set() bool { return c.ranges != nil }

func (c *codeSet) has(code int) bool {
	for _, r := range c.ranges {
		if code >= r[0] && code <= r[1] {
			return true
		}
	}
	return false
}

// Type names the value in help ("--retry-on statuses").
func (*codeSet) Type() string { return "statuses" }
