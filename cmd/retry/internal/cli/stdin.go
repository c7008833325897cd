package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// defaultStdinMax is --stdin-max's default: how much standard input is
// kept to replay to later attempts.
const defaultStdinMax = 64 << 20

// tapeChunk is how much is read from the source at a time, and how far the
// source may run ahead of the first attempt once replay is given up.
const tapeChunk = 32 << 10

// errStdinOver is returned to a retry that would need standard input
// beyond what was kept.
var errStdinOver = errors.New("standard input is larger than --stdin-max: it cannot be replayed to this attempt (raise --stdin-max, or use --stdin=pass)")

// tape records standard input as it arrives, so that the first attempt
// reads it at once (no wait for the end of the input) and every later
// attempt reads it again from the start. Past limit bytes it stops keeping
// what the current attempt has read: later attempts then get errStdinOver.
type tape struct {
	mu    sync.Mutex
	cond  *sync.Cond
	data  []byte // the input from offset base on
	base  int64
	total int64
	done  bool  // the source ended (err: how, io.EOF for a clean end)
	err   error // the source's error, if not io.EOF
	limit int64
	over  bool        // more than limit arrived: no replay
	cur   *tapeReader // the current attempt's reader
	quit  bool        // nobody will read any more: the pump stops
}

// newTape starts copying src into a tape.
func newTape(src io.Reader, limit int64) *tape {
	t := &tape{limit: limit}
	t.cond = sync.NewCond(&t.mu)
	go t.pump(src)
	return t
}

func (t *tape) pump(src io.Reader) {
	buf := make([]byte, tapeChunk)
	for {
		n, err := src.Read(buf)
		t.mu.Lock()
		if n > 0 {
			t.data = append(t.data, buf[:n]...)
			t.total += int64(n)
			if t.total > t.limit {
				t.over = true
			}
			t.trim()
		}
		if err != nil {
			t.done = true
			if err != io.EOF {
				t.err = err
			}
		}
		t.cond.Broadcast()
		// Once replay is given up, the source may not run ahead of the
		// current attempt by more than a chunk.
		for t.over && !t.quit && !t.done && int64(len(t.data)) > tapeChunk {
			t.cond.Wait()
		}
		stop := t.done || t.quit
		t.mu.Unlock()
		if stop {
			return
		}
	}
}

// trim drops what the current reader has read, once replay is given up.
func (t *tape) trim() {
	if !t.over || t.cur == nil {
		return
	}
	if k := t.cur.off - t.base; k > 0 {
		t.data = t.data[k:]
		t.base = t.cur.off
	}
}

// reader returns, for the next attempt, a reader of the input from its
// start, or errStdinOver if more than the limit has arrived (what was read
// is no longer kept). Attempts run one at a time: the new reader is the
// current one.
func (t *tape) reader() (*tapeReader, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.over {
		return nil, errStdinOver
	}
	r := &tapeReader{t: t}
	t.cur = r
	return r, nil
}

// stop tells the pump that no one will read any more.
func (t *tape) stop() {
	t.mu.Lock()
	t.quit = true
	t.cond.Broadcast()
	t.mu.Unlock()
}

// tapeReader reads a tape from the start, waiting for input as it arrives.
type tapeReader struct {
	t      *tape
	off    int64
	closed bool
}

func (r *tapeReader) Read(p []byte) (int, error) {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	for !r.closed && r.off >= t.base+int64(len(t.data)) && !t.done {
		t.cond.Wait()
	}
	switch {
	case r.closed:
		return 0, io.EOF
	case r.off < t.base:
		return 0, errStdinOver
	case r.off >= t.base+int64(len(t.data)):
		if t.err != nil {
			return 0, t.err
		}
		return 0, io.EOF
	}
	n := copy(p, t.data[r.off-t.base:])
	r.off += int64(n)
	t.trim()
	t.cond.Broadcast()
	return n, nil
}

func (r *tapeReader) blocking() {}

// Close ends the reader: a Read blocked waiting for input returns io.EOF.
func (r *tapeReader) Close() error {
	r.t.mu.Lock()
	r.closed = true
	r.t.cond.Broadcast()
	r.t.mu.Unlock()
	return nil
}

// sizeValue is a byte count flag: 1048576, 64MiB, 512KiB, 1GiB.
type sizeValue struct{ n *int64 }

func (v sizeValue) String() string {
	if v.n == nil {
		return ""
	}
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if *v.n >= u.m && *v.n%u.m == 0 {
			return strconv.FormatInt(*v.n/u.m, 10) + u.suffix
		}
	}
	return strconv.FormatInt(*v.n, 10)
}

func (v sizeValue) Set(s string) error {
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = rest, u.m
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q: want a size in bytes, e.g. 1048576, 64MiB, 512KiB or 1GiB", s)
	}
	*v.n = n * mult
	return nil
}

// Type names the value in help ("--stdin-max size").
func (sizeValue) Type() string { return "size" }
