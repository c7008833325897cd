package cli

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// TestTapeStreamsAndReplays: the first reader gets input as it arrives;
// the next reads it all again from the start.
func TestTapeStreamsAndReplays(t *testing.T) {
	pr, pw := io.Pipe()
	tp := newTape(pr, defaultStdinMax)
	defer tp.stop()
	r1, err := tp.reader()
	if err != nil {
		t.Fatal(err)
	}
	go pw.Write([]byte("first "))
	b := make([]byte, 16)
	n, err := r1.Read(b)
	if err != nil || string(b[:n]) != "first " {
		t.Fatalf("Read before the end of the input: %q, %v", b[:n], err)
	}
	go func() { pw.Write([]byte("second")); pw.Close() }()
	rest, _ := io.ReadAll(r1)
	if string(rest) != "second" {
		t.Errorf("the rest: %q", rest)
	}
	r2, err := tp.reader()
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := io.ReadAll(r2); string(all) != "first second" {
		t.Errorf("the replay: %q", all)
	}
}

// TestTapePastTheLimit: past the limit the current reader still gets all
// of the input, memory stays within a couple of chunks, and a replay is
// refused naming the flag.
func TestTapePastTheLimit(t *testing.T) {
	input := strings.Repeat("0123456789", 100_000) // 1 MB
	tp := newTape(strings.NewReader(input), 1024)
	defer tp.stop()
	r1, _ := tp.reader()
	var got bytes.Buffer
	buf := make([]byte, 4096)
	peak := 0
	for {
		n, err := r1.Read(buf)
		got.Write(buf[:n])
		tp.mu.Lock()
		peak = max(peak, len(tp.data))
		tp.mu.Unlock()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got.String() != input {
		t.Errorf("the first reader got %d bytes of %d", got.Len(), len(input))
	}
	if peak > 3*tapeChunk {
		t.Errorf("%d bytes kept at the peak past the limit, want at most a few chunks", peak)
	}
	if _, err := tp.reader(); !errors.Is(err, errStdinOver) || !strings.Contains(err.Error(), "--stdin-max") {
		t.Errorf("a replay past the limit: %v", err)
	}
}

// TestTapeReaderCloseUnblocks: a Read waiting for input that never comes
// returns io.EOF when the reader is closed (the command has exited).
func TestTapeReaderCloseUnblocks(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	tp := newTape(pr, defaultStdinMax)
	defer tp.stop()
	r, _ := tp.reader()
	done := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 8))
		done <- err
	}()
	r.Close() // whether the Read has begun waiting or not, it returns EOF
	select {
	case err := <-done:
		if err != io.EOF {
			t.Errorf("Read after Close: %v, want EOF", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock the Read")
	}
}

func TestSizeValue(t *testing.T) {
	var n int64
	for in, want := range map[string]int64{"1024": 1024, "64MiB": 64 << 20, "512KiB": 512 << 10, "1GiB": 1 << 30} {
		if err := (sizeValue{&n}).Set(in); err != nil || n != want {
			t.Errorf("%q: %d, %v; want %d", in, n, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1TB", "lots", "9999999999GiB"} {
		if err := (sizeValue{&n}).Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
