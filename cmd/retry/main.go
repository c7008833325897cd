// Command retry runs a command until it succeeds, with capped exponential
// backoff and jitter; shows on a real throttled service what jitter, budgets
// and adaptive rate limiting change (retry demo); reproduces the published
// backoff simulations (retry sim); and serves a throttling, fault-injecting
// HTTP service to rehearse against (retry serve). See retry help.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/jittered/retry/cmd/retry/internal/cli"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	os.Exit(cli.Main(context.Background(), os.Args[1:], cli.IO{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Signals: sigs,
	}))
}
