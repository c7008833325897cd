package redisretry

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAwaitPrefersAnAnswerToACancelledContext: the goroutine that runs a
// command sends its answer and then cancels the command's context, so the
// waiter may find both ready. It must take the answer every time (a plain
// select picks at random: each try below then fails with probability ½).
func TestAwaitPrefersAnAnswerToACancelledContext(t *testing.T) {
	for i := range 64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		ch := make(chan answer, 1)
		ch <- answer{res: []any{"ok"}}
		cancel()
		res, err := await(ctx, ch, time.Hour)
		if err != nil || len(res) != 1 || res[0] != "ok" {
			t.Fatalf("try %d: await = %v, %v; want the answer sent before the cancel", i, res, err)
		}
	}
}

// TestAwaitTimesOut: with no answer, a done context is a timeout that says
// how long it waited and wraps context.DeadlineExceeded (step falls back on
// it).
func TestAwaitTimesOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	res, err := await(ctx, make(chan answer, 1), 100*time.Millisecond)
	if res != nil || !errors.Is(err, context.DeadlineExceeded) || err.Error() != "redisretry: no answer from Redis within 100ms: context deadline exceeded" {
		t.Fatalf("await = %v, %v; want the timeout error", res, err)
	}
}
