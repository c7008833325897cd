// Package cli implements the retry command: Main parses the arguments and
// runs a subcommand with the given standard streams and signals. Nothing
// here reads os.Args, writes os.Stdout or calls os.Exit, so the whole
// command is tested in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"
)

// Exit statuses of the retry command itself (a wrapped command's own status
// is passed through by retry run).
//
// They follow the coreutils wrappers (timeout, env, nohup), so that a
// wrapped command's own statuses (1, 2, …) keep their meaning.
const (
	ExitOK = 0
	// ExitFailure is retry's own failure, ExitUsage bad usage: both 125,
	// as timeout(1) and env(1) answer.
	ExitFailure = 125
	ExitUsage   = 125
	// ExitGaveUpOnTime: retry run stopped on time — --max-time ran out
	// (the running attempt ended as an attempt timeout ends it) or the last
	// attempt hit --attempt-timeout — as timeout(1).
	ExitGaveUpOnTime = 124
	ExitCannotRun    = 126 // the command exists but cannot be executed
	ExitNotFound     = 127 // the command was not found
	// ExitKilled: as ExitGaveUpOnTime, but the attempt outlived --grace
	// after SIGTERM and was killed (timeout(1) with --kill-after).
	ExitKilled = 128 + 9
)

// IO is the process's standard streams and its signals.
type IO struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Signals delivers SIGINT, SIGTERM and SIGHUP; nil means none.
	Signals <-chan os.Signal
	// Getenv reads the environment (for flag defaults); nil means
	// os.LookupEnv.
	Getenv func(string) (string, bool)
}

// withSignals runs f with a context that the first signal on std.Signals
// cancels; f stops early and prints what it measured so far. A run that a
// signal ended exits 128+N (130 for SIGINT, 143 for SIGTERM), as a shell
// reports a command killed by that signal.
func withSignals(ctx context.Context, std IO, f func(context.Context) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	got := make(chan os.Signal, 1)
	go func() {
		select {
		case s, ok := <-std.Signals:
			if ok {
				got <- s
				cancel(fmt.Errorf("interrupted by %v", s))
			}
		case <-done:
		}
	}()
	err := f(ctx)
	close(done)
	select {
	case s := <-got:
		code := ExitFailure
		if n, ok := s.(syscall.Signal); ok {
			code = 128 + int(n)
		}
		return exitError{code: code, err: fmt.Errorf("stopped: interrupted by %v", s)}
	default:
	}
	return err
}

// usageError is a bad command line: exit status 125 (ExitUsage), one line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// exitError carries a specific exit status out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

const mainUsage = `retry — retries done right.

Usage:
  retry run [flags] -- COMMAND [ARGS...]   run COMMAND until it succeeds
  retry demo [flags]                       compare retry strategies on a real throttled service
  retry sim brooker|throttle [flags]       virtual-time backoff simulations
  retry serve [flags]                      a throttling, fault-injecting HTTP service
  retry version                            print the version
  retry completion bash|zsh|fish           print a shell completion script

Flags are GNU-style (--name value, --name=value, short forms such as -n).
Run "retry COMMAND -h" for the flags and examples of each.
`

// Main runs the retry command with args (without the program name) and
// returns its exit status.
func Main(ctx context.Context, args []string, std IO) int {
	return (&Program{}).Main(ctx, args, std)
}

// Program is the retry command with its dependencies; the zero value runs
// real processes.
type Program struct {
	// Runner runs the commands of retry run; nil means real processes.
	Runner Runner
}

// Main is the package-level Main with p's dependencies.
func (p *Program) Main(ctx context.Context, args []string, std IO) int {
	if std.Stdin == nil {
		std.Stdin = strings.NewReader("")
	}
	if len(args) == 0 {
		fmt.Fprint(std.Stderr, mainUsage)
		return ExitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		err = p.run(ctx, rest, std)
	case "demo":
		err = withSignals(ctx, std, func(ctx context.Context) error { return demo(ctx, rest, std) })
	case "sim":
		err = withSignals(ctx, std, func(ctx context.Context) error { return simCmd(ctx, rest, std) })
	case "serve":
		err = serve(ctx, rest, std)
	case "version", "--version", "-version":
		if len(rest) > 0 {
			err = usagef("version: unexpected argument %q", rest[0])
			break
		}
		fmt.Fprintln(std.Stdout, "retry", version())
	case "completion", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
		err = p.complete(args, std)
	case "help", "-h", "--help":
		fmt.Fprint(std.Stdout, mainUsage)
	default:
		err = usagef("unknown command %q (want run, demo, sim, serve or version)", cmd)
	}
	return exitCode(err, std.Stderr)
}

func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	var ee exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "retry:", strings.ReplaceAll(ue.msg, "\n", "; "))
		return ExitUsage
	case errors.As(err, &ee):
		if ee.err != nil {
			fmt.Fprintln(stderr, "retry:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "retry:", err)
	return ExitFailure
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// newFlags returns a GNU-style flag set (spf13/pflag: --name, --name=value,
// -x short forms) whose errors become usage errors naming the flag, and
// whose -h/--help prints usage (with examples) to stdout.
func newFlags(name, usage string, std IO) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // errors are one line (see parse); -h prints help
	fs.SortFlags = false // in the order they are defined: most used first
	fs.help = func() {
		fmt.Fprint(std.Stdout, usage)
		fmt.Fprint(std.Stdout, fs.FlagUsagesWrapped(100))
	}
	return fs
}

// flagSet is a pflag.FlagSet with its -h text.
type flagSet struct {
	*flag.FlagSet
	help func()
	// env, if set, is the prefix of environment variables that give
	// defaults: RETRY_ATTEMPTS for --attempts (a flag on the command line
	// wins).
	env    string
	getenv func(string) (string, bool)
}

// envDefaults sets each flag not given on the command line from its
// environment variable, if set.
func (fs *flagSet) envDefaults() error {
	if fs.env == "" {
		return nil
	}
	getenv := fs.getenv
	if getenv == nil {
		getenv = os.LookupEnv
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := fs.env + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := getenv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = usagef("%s: %s=%q (the default of --%s): %v", fs.Name(), name, v, f.Name, serr)
			}
		}
	})
	return err
}

// parse parses args, turning flag errors into one-line usage errors.
func parse(fs *flagSet, args []string) error {
	if described(fs, args) {
		return errDescribe
	}
	err := fs.Parse(args)
	if err == nil {
		return fs.envDefaults()
	}
	if errors.Is(err, flag.ErrHelp) {
		fs.help()
		return err
	}
	return usagef("%s: %v", fs.Name(), strings.TrimSpace(err.Error()))
}

// parseNoArgs is parse for a command that takes no other words: a stray
// word is an error, not the silent end of the flags (the flag package
// stops at the first non-flag, so "demo extra --items 10" used to run the
// default demo).
func parseNoArgs(fs *flagSet, args []string) error {
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q (this command takes only flags; see %s -h)", fs.Name(), fs.Arg(0), fs.Name())
	}
	return nil
}

// durationValue is a duration flag that also takes plain seconds ("1.5").
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string {
	if v.d == nil {
		return "0s"
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > 1e9 {
			return fmt.Errorf("%q: must be between 0 and 1e9 seconds", s)
		}
		*v.d = time.Duration(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q: not a duration (e.g. 250ms, 1.5s, 2m, or seconds)", s)
	}
	if d < 0 {
		return fmt.Errorf("%q: must not be negative", s)
	}
	*v.d = d
	return nil
}

func durationFlag(fs *flagSet, name string, def time.Duration, usage string) *time.Duration {
	d := def
	fs.Var(durationValue{&d}, name, usage)
	return &d
}

// Type names the value in help ("--base duration").
func (durationValue) Type() string { return "duration" }
