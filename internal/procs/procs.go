// Package procs runs the running test binary again as separate OS
// processes, for the tests and benchmarks whose claims are about several
// processes (each with its own limiter, or sharing one through Redis).
package procs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"
)

// Run starts one child per element of args, all at once: the test binary
// itself with no test selected and env set to the element as JSON (the
// child's TestMain reads it and does its part). Each child's standard
// output is decoded as JSON into the result of the same index. A child
// still running after timeout is killed; every failure is reported,
// naming the child.
func Run[A, R any](env string, args []A, timeout time.Duration) ([]R, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	results := make([]R, len(args))
	errs := make([]error, len(args))
	var wg sync.WaitGroup
	for i, a := range args {
		js, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), env+"="+string(js))
			out, err := cmd.Output()
			if err != nil {
				var stderr []byte
				if ee, ok := err.(*exec.ExitError); ok {
					stderr = ee.Stderr
				}
				errs[i] = fmt.Errorf("process %d: %w: %s%s", i, err, out, stderr)
				return
			}
			if err := json.Unmarshal(out, &results[i]); err != nil {
				errs[i] = fmt.Errorf("process %d: %w: %q", i, err, out)
			}
		})
	}
	wg.Wait()
	return results, errors.Join(errs...)
}
