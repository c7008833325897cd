// Package procs runs copies of the running test binary as separate OS
// processes, for measurements that goroutines cannot make: K clients, each
// with its own limiter, its own runtime and its own scheduler, as K pods
// would have. The parent passes each child its arguments as JSON in an
// environment variable; the child answers with one JSON value on its
// standard output.
//
// A test binary becomes a child in TestMain, before the tests run:
//
//	func TestMain(m *testing.M) {
//		procs.Child("MYPKG_CHILD", func(a childArgs) (childResult, error) {
//			return work(a)
//		})
//		os.Exit(m.Run())
//	}
//
// and a test starts children with Run:
//
//	results, err := procs.Run[childArgs, childResult](ctx, "MYPKG_CHILD", args)
package procs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Child makes this process a child if the environment variable env is
// set: it decodes the variable's JSON into an A, calls f, writes f's
// result to standard output as JSON and exits — with status 0, 1 if f
// returned an error (written to standard error) or 2 if the arguments do
// not decode. It returns, doing nothing, when env is not set.
func Child[A, R any](env string, f func(A) (R, error)) {
	v, ok := os.LookupEnv(env)
	if !ok {
		return
	}
	os.Exit(child(v, f))
}

func child[A, R any](v string, f func(A) (R, error)) int {
	var a A
	if err := json.Unmarshal([]byte(v), &a); err != nil {
		fmt.Fprintf(os.Stderr, "procs: child arguments: %v\n", err)
		return 2
	}
	r, err := f(a)
	if err != nil {
		fmt.Fprintf(os.Stderr, "procs: child: %v\n", err)
		return 1
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		fmt.Fprintf(os.Stderr, "procs: child result: %v\n", err)
		return 1
	}
	return 0
}

// Run starts one copy of the running test binary per element of args, all
// at once, each with env set to that element as JSON and no test selected
// (-test.run=^$: the child's TestMain does the work, through Child). It
// waits for all of them — ctx ends any still running — and returns their
// results in the order of args, or an error naming every process that
// failed, with what it wrote to standard error.
func Run[A, R any](ctx context.Context, env string, args []A) ([]R, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("procs: the test binary: %w", err)
	}
	// Every argument is encoded before any process starts: an error then
	// returns with nothing left running.
	encoded := make([][]byte, len(args))
	for i, a := range args {
		if encoded[i], err = json.Marshal(a); err != nil {
			return nil, fmt.Errorf("procs: arguments of process %d: %w", i, err)
		}
	}
	results := make([]R, len(args))
	errs := make([]error, len(args))
	var wg sync.WaitGroup
	for i, js := range encoded {
		wg.Go(func() {
			cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), env+"="+string(js))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				errs[i] = fmt.Errorf("process %d: %w: %s", i, err, strings.TrimSpace(stderr.String()))
				return
			}
			if err := json.Unmarshal(out, &results[i]); err != nil {
				errs[i] = fmt.Errorf("process %d: its result: %w: %q", i, err, out)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("procs: %w", err)
	}
	return results, nil
}
