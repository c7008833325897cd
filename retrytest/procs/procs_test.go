package procs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jittered/retry/retrytest/procs"
	"go.uber.org/goleak"
)

const env = "PROCS_TEST_CHILD"

type args struct {
	N     int
	Fail  string
	Touch string // a file the child creates, to show that it ran
}

type result struct {
	Square int
	PID    int
}

func TestMain(m *testing.M) {
	procs.Child(env, func(a args) (result, error) {
		if a.Touch != "" {
			if err := os.WriteFile(a.Touch, nil, 0o644); err != nil {
				return result{}, err
			}
		}
		if a.Fail != "" {
			return result{}, errors.New(a.Fail)
		}
		return result{Square: a.N * a.N, PID: os.Getpid()}, nil
	})
	goleak.VerifyTestMain(m)
}

// TestRunStartsOneProcessEach: three children, each answering for its own
// arguments, in order, from a process of its own.
func TestRunStartsOneProcessEach(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	got, err := procs.Run[args, result](ctx, env, []args{{N: 2}, {N: 3}, {N: 4}})
	if err != nil {
		t.Fatal(err)
	}
	pids := map[int]bool{os.Getpid(): true}
	for i, r := range got {
		if want := (i + 2) * (i + 2); r.Square != want {
			t.Errorf("process %d answered %d, want %d", i, r.Square, want)
		}
		if pids[r.PID] {
			t.Errorf("process %d ran in pid %d, not a process of its own", i, r.PID)
		}
		pids[r.PID] = true
	}
}

// TestRunNamesTheFailedProcess: a child whose work fails makes Run fail,
// naming it and quoting its standard error.
func TestRunNamesTheFailedProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := procs.Run[args, result](ctx, env, []args{{N: 1}, {Fail: "the service refused"}})
	if err == nil || !strings.Contains(err.Error(), "process 1") || !strings.Contains(err.Error(), "the service refused") || strings.Contains(err.Error(), "process 0") {
		t.Errorf("Run: %v; want an error naming process 1 and its message only", err)
	}
}

// TestRunEndsWithTheContext: children still running when ctx ends are
// killed, and Run reports them.
func TestRunEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := procs.Run[args, result](ctx, env, []args{{N: 1}}); err == nil {
		t.Error("Run with an ended context: no error")
	}
}

// TestChildRefusesArgumentsOfAnotherType: arguments that do not decode
// into the child's type end it with status 2 and say so.
func TestChildRefusesArgumentsOfAnotherType(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := procs.Run[string, result](ctx, env, []string{"not an args object"})
	if err == nil || !strings.Contains(err.Error(), "exit status 2") || !strings.Contains(err.Error(), "child arguments") {
		t.Errorf("Run with arguments of another type: %v; want exit status 2 and the decoding error", err)
	}
}

// TestRunEncodesEveryArgumentFirst: an argument that cannot be encoded
// fails Run before any process starts — none is left running behind the
// error (Run used to start the processes before it and return without
// waiting for them). A child that ran would create the file; a second is
// far longer than a child takes to start here (tens of milliseconds).
func TestRunEncodesEveryArgumentFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	touched := filepath.Join(t.TempDir(), "ran")
	_, err := procs.Run[any, result](ctx, env, []any{args{N: 1, Touch: touched}, make(chan int)})
	if err == nil || !strings.Contains(err.Error(), "arguments of process 1") {
		t.Fatalf("Run with an argument that cannot be encoded: %v; want an error naming process 1's arguments", err)
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(touched); err == nil {
			t.Fatal("process 0 ran although Run returned an error")
		}
	}
}
