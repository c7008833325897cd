package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/jittered/retry"
)

const runUsage = `Usage: retry run [flags] -- COMMAND [ARGS...]

Runs COMMAND; while it fails, waits with capped exponential backoff and
jitter and runs it again. Standard output and error pass through. Standard
input, when it is not a terminal, is streamed to the first attempt as it
arrives and kept (up to --stdin-max) to replay to the next ones (from a
terminal the command gets none: it runs in its own process group, so that
a timeout can end it with its children). SIGINT, SIGTERM and SIGHUP are
forwarded to the command's process group and stop the retries.

Exit status (as timeout(1) and env(1)):
  the last attempt's    COMMAND ran and retry stopped (success, or gave up)
  124                   gave up on time: --max-time ran out (the running
                        attempt is ended as --attempt-timeout ends it) or the
                        last attempt hit --attempt-timeout
  137                   as 124, but the attempt outlived --grace and was
                        killed (SIGKILL)
  125                   retry itself failed, or bad usage
  126                   COMMAND cannot be executed (the OS's reason is printed)
  127                   COMMAND not found, or its #! interpreter is missing
  128+N                 retry stopped on signal N (forwarded to COMMAND)

Every flag takes its default from the environment: RETRY_ATTEMPTS=10 for
--attempts, RETRY_ATTEMPT_TIMEOUT=30s for --attempt-timeout, and so on (a
flag on the command line wins).

Examples:
  retry run -- curl -fsS https://example.com/health
  retry run --attempts 10 --base 500ms --cap 30s -- make flaky-test
  retry run --retry-on 75,100-110 --max-time 5m -- ./deploy.sh
  retry run --attempt-timeout 30s --json -- ./slow-probe
  retry run --dry-run --attempts 6 --jitter equal -- true

Flags:
`

type runFlags struct {
	attempts         int
	base, cap, grace time.Duration
	maxTime, timeout time.Duration
	multiplier       float64
	jitter           string
	retryOn, stopOn  codeSet
	dryRun, quiet    bool
	until            codeSet
	signal           string
	preserve         bool
	foreground       bool
	stdout, message  string
	stdin            string
	stdinMax         int64
	json             bool
	seed             uint64
}

// errMaxTime is the cause of the run's context when --max-time runs out.
var errMaxTime = errors.New("--max-time ran out")

// attemptRecord is one line of --json output.
type attemptRecord struct {
	Attempt    int     `json:"attempt"`
	ExitCode   int     `json:"exit_code"`
	DurationMS float64 `json:"duration_ms"`
	TimedOut   bool    `json:"timed_out,omitempty"`
	Signal     string  `json:"signal,omitempty"`
	NextDelay  *string `json:"next_delay,omitempty"`
	Final      bool    `json:"final,omitempty"`
	Reason     string  `json:"reason,omitempty"`
}

type exitCodeError struct{ o Outcome }

func (e exitCodeError) Error() string {
	switch {
	case e.o.TimedOut:
		return fmt.Sprintf("attempt timed out (exit status %d)", e.o.Code)
	case e.o.Signal != nil:
		return fmt.Sprintf("interrupted by %v (exit status %d)", e.o.Signal, e.o.Code)
	}
	return fmt.Sprintf("exit status %d", e.o.Code)
}

func (p *Program) run(ctx context.Context, args []string, std IO) error {
	var f runFlags
	fs := newFlags("run", runUsage, std)
	// The first word that is not a flag starts COMMAND: its own flags
	// (sh -c …) are not retry's.
	fs.SetInterspersed(false)
	fs.env, fs.getenv = "RETRY_", std.Getenv
	fs.IntVarP(&f.attempts, "attempts", "n", 5, "attempts in all, the first included (0: unlimited)")
	f.base = 1 * time.Second
	fs.Var(durationValue{&f.base}, "base", "delay after the first failure")
	f.cap = time.Minute
	fs.Var(durationValue{&f.cap}, "cap", "longest delay")
	fs.Float64Var(&f.multiplier, "multiplier", 2, "growth of the delay per failure (≥ 1)")
	fs.StringVar(&f.jitter, "jitter", "full", "none, full, equal or decorrelated")
	fs.VarP(durationValue{&f.maxTime}, "max-time", "m", "a hard limit on the whole run: no wait past it, and a running attempt is ended then (0: none)")
	fs.VarP(durationValue{&f.timeout}, "attempt-timeout", "t", "end an attempt after this long: SIGTERM, then SIGKILL after --grace (0: none)")
	f.grace = 5 * time.Second
	fs.VarP(durationValue{&f.grace}, "grace", "k", "time between SIGTERM and SIGKILL (0: SIGKILL at once)")
	fs.Var(&f.retryOn, "retry-on", "retry only these exit statuses (e.g. 1,75,100-110; repeatable; default: any non-zero)")
	fs.Var(&f.stopOn, "stop-on", "never retry these exit statuses (repeatable)")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the schedule and exit")
	fs.StringVar(&f.stdin, "stdin", "replay", "standard input: replay (streamed to the first attempt, kept for the next; none from a terminal), pass (each attempt reads on from where the last stopped) or none")
	f.stdinMax = defaultStdinMax
	fs.Var(sizeValue{&f.stdinMax}, "stdin-max", "how much standard input to keep for replay (e.g. 64MiB, 1GiB); past it the first attempt still gets it all, retries cannot")
	fs.VarP(&f.until, "until", "u", "exit statuses that count as success (e.g. 0,3; repeatable; default: 0)")
	fs.StringVarP(&f.signal, "signal", "s", "TERM", "the signal that ends an attempt on --attempt-timeout or --max-time (TERM, INT, HUP, QUIT, USR1, USR2 or a number)")
	fs.BoolVar(&f.preserve, "preserve-status", false, "when giving up on time, exit with the command's own status instead of 124/137")
	fs.BoolVar(&f.foreground, "foreground", false, "run the command in retry's process group so that it can read the terminal (timeouts then reach the command only, not its children)")
	fs.StringVar(&f.stdout, "stdout", "all", "all (every attempt's output passes through) or last (only the last attempt's, written when it ends)")
	fs.StringVar(&f.message, "message", "", "the retry line, as a Go template with .Attempt .Limit .Status .TimedOut .Delay .Command (default: \"retry: attempt 1/5 exited 1; next attempt in 1s\")")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "print nothing of retry's own")
	fs.BoolVar(&f.json, "json", false, "one JSON object per attempt on stderr")
	fs.Uint64Var(&f.seed, "seed", 0, "seed for the jitter (0: random)")
	if err := parse(fs, args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	policy, err := f.policy()
	if err != nil {
		return err
	}
	stopSig, err := parseSignal(f.signal)
	if err != nil {
		return usagef("run: --signal %q: %v", f.signal, err)
	}
	if f.stdout != "all" && f.stdout != "last" {
		return usagef("run: --stdout %q: must be all or last", f.stdout)
	}
	retryLine, err := retryMessage(f.message)
	if err != nil {
		return usagef("run: --message: %v", err)
	}
	if f.dryRun {
		return policy.WriteSchedule(std.Stdout, 0)
	}
	if len(argv) == 0 {
		return usagef("run: no command given (retry run [flags] -- COMMAND [ARGS...])")
	}
	// Standard input: streamed to the first attempt as it arrives, and kept
	// (up to --stdin-max) to replay to the next ones.
	var tp *tape
	var pass io.Reader
	switch f.stdin {
	case "replay":
		if f.foreground && stdinIsTerminal(std.Stdin) {
			pass = std.Stdin // the command reads the terminal
		} else if !stdinIsTerminal(std.Stdin) {
			tp = newTape(std.Stdin, f.stdinMax)
			defer tp.stop()
		}
	case "pass":
		pass = std.Stdin
	case "none":
	default:
		return usagef("run: --stdin %q: must be replay, pass or none", f.stdin)
	}
	runner := p.Runner
	if runner == nil {
		runner = execRunner{}
	}

	// A signal stops the retries: the runner forwards it to the command; the
	// loop gives up when the attempt ends.
	// During an attempt a signal goes to the runner, which forwards it to the
	// command; between attempts it ends the wait at once.
	sigs := make(chan os.Signal, 4)
	var (
		mu      sync.Mutex
		stopped os.Signal
		running bool
	)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if f.maxTime > 0 {
		// A hard limit: Do gives up rather than wait past it, and the
		// runner ends a running attempt then (SIGTERM, SIGKILL after --grace).
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, f.maxTime, errMaxTime)
		defer stop()
	}
	go func() {
		for {
			select {
			case s, ok := <-std.Signals:
				if !ok {
					return
				}
				mu.Lock()
				if running {
					sigs <- s
				} else {
					stopped = s
					cancel(fmt.Errorf("received %v", s))
				}
				mu.Unlock()
			case <-ctx.Done():
				return
			}
		}
	}()

	var last Outcome
	var lastStart time.Time
	var lastOut bytes.Buffer // --stdout last
	attempts := 0
	emit := func(rec attemptRecord) {
		if f.json {
			b, _ := json.Marshal(rec)
			fmt.Fprintf(std.Stderr, "%s\n", b)
		}
	}
	limit := "∞"
	if n, ok := policy.AttemptLimit(); ok {
		limit = fmt.Sprint(n)
	}
	policy.Observer = retry.ObserverFuncs{Retry: func(e retry.RetryEvent) {
		d := e.Delay.Round(time.Millisecond).String()
		emit(attemptRecord{Attempt: e.Attempt, ExitCode: last.Code, DurationMS: ms(time.Since(lastStart)), TimedOut: last.TimedOut, NextDelay: &d})
		if !f.quiet && !f.json {
			retryLine.Execute(std.Stderr, messageData{Attempt: e.Attempt, Limit: limit, Status: last.Code, TimedOut: last.TimedOut,
				Delay: d, Timeout: f.timeout.String(), Command: strings.Join(argv, " ")})
		}
	}}

	err = policy.Do(ctx, func(ctx context.Context) error {
		in := pass
		if tp != nil {
			r, err := tp.reader()
			if err != nil {
				return retry.Permanent(exitError{code: ExitFailure, err: err})
			}
			defer r.Close()
			in = r
		}
		lastStart = time.Now()
		attempts++
		mu.Lock()
		running = true
		mu.Unlock()
		stdout := std.Stdout
		if f.stdout == "last" {
			lastOut.Reset() // only the last attempt's output is passed on
			stdout = &lastOut
		}
		o, err := runner.Run(ctx, Attempt{Argv: argv, Stdin: in, Stdout: stdout, Stderr: std.Stderr, Timeout: f.timeout, Grace: f.grace, Signals: sigs,
			Stop: stopSig, Foreground: f.foreground})
		mu.Lock()
		running = false
		if o.Signal != nil {
			stopped = o.Signal
		}
		mu.Unlock()
		last = o
		switch {
		case err != nil:
			return retry.Permanent(err)
		case o.Signal != nil:
			cancel(fmt.Errorf("received %v", o.Signal))
			return retry.Permanent(exitCodeError{o})
		case !o.TimedOut && (o.Code == 0 && !f.until.set() || f.until.has(o.Code)):
			return nil
		case o.TimedOut:
			return exitCodeError{o} // retryable, whatever the status
		case f.stopOn.has(o.Code), f.retryOn.set() && !f.retryOn.has(o.Code):
			return retry.Permanent(exitCodeError{o})
		}
		return exitCodeError{o}
	})
	if f.stdout == "last" {
		std.Stdout.Write(lastOut.Bytes())
	}
	var gave *retry.Error
	reason := ""
	if errors.As(err, &gave) {
		reason = gave.Reason.String()
	}
	mu.Lock()
	sig := stopped
	mu.Unlock()
	emit(attemptRecord{Attempt: attempts, ExitCode: last.Code, DurationMS: ms(time.Since(lastStart)), TimedOut: last.TimedOut, Final: true, Reason: reason, Signal: sigName(sig)})
	var own exitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &own):
		return own // retry's own failure (standard input that cannot be replayed)
	case errors.Is(err, ErrNotFound):
		return exitError{code: ExitNotFound, err: fmt.Errorf("%s: %s", argv[0], osReason(err, ErrNotFound.Error()))}
	case errors.Is(err, ErrCannotRun):
		return exitError{code: ExitCannotRun, err: fmt.Errorf("%s: %s", argv[0], osReason(err, ErrCannotRun.Error()))}
	case sig != nil:
		if s, ok := sig.(syscall.Signal); ok {
			return exitError{code: 128 + int(s)}
		}
		return exitError{code: ExitFailure}
	}
	var msg error
	if !f.quiet && !f.json {
		if errors.Is(context.Cause(ctx), errMaxTime) {
			reason = fmt.Sprintf("--max-time %v ran out", f.maxTime)
		}
		msg = fmt.Errorf("gave up: %s after %d attempt(s); last exit status %d", reason, attempts, last.Code)
	}
	onTime := errors.Is(context.Cause(ctx), errMaxTime) ||
		(gave != nil && (gave.Reason == retry.ReasonMaxElapsed || gave.Reason == retry.ReasonDeadline || (gave.Reason == retry.ReasonMaxAttempts && last.TimedOut)))
	switch {
	case onTime && f.preserve:
		return exitError{code: last.Code, err: msg} // as timeout --preserve-status
	case onTime && last.Killed:
		return exitError{code: ExitKilled, err: msg}
	case onTime:
		return exitError{code: ExitGaveUpOnTime, err: msg}
	}
	return exitError{code: last.Code, err: msg}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sigName(s os.Signal) string {
	if s == nil {
		return ""
	}
	return s.String()
}

func (f *runFlags) policy() (*retry.Policy, error) {
	if f.attempts < 0 {
		return nil, usagef("run: --attempts %d: must be ≥ 0 (0 means unlimited)", f.attempts)
	}
	if f.base <= 0 {
		return nil, usagef("run: --base %v: must be > 0", f.base)
	}
	if f.cap < f.base {
		return nil, usagef("run: --cap %v: must be ≥ --base (%v)", f.cap, f.base)
	}
	if !(f.multiplier >= 1) || f.multiplier > 1e6 {
		return nil, usagef("run: --multiplier %v: must be between 1 and 1e6", f.multiplier)
	}
	var j retry.Jitter
	switch strings.ToLower(f.jitter) {
	case "none":
		j = retry.NoJitter
	case "full":
		j = retry.FullJitter
	case "equal":
		j = retry.EqualJitter
	case "decorrelated":
		j = retry.DecorrelatedJitter
	default:
		return nil, usagef("run: --jitter %q: must be none, full, equal or decorrelated", f.jitter)
	}
	p := &retry.Policy{
		MaxAttempts: f.attempts,
		Backoff:     retry.Exponential{Base: f.base, Multiplier: f.multiplier, Cap: f.cap},
		Jitter:      j,
		MaxElapsed:  f.maxTime,
	}
	if f.attempts == 0 {
		p.MaxAttempts = retry.Unlimited
	}
	if f.seed != 0 {
		p.Rand = retry.NewRand(f.seed)
	}
	if err := p.Validate(); err != nil {
		return nil, usagef("run: %v", err)
	}
	return p, nil
}

// stdinIsTerminal reports whether r is a terminal.
func stdinIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// messageData is what --message's template sees.
type messageData struct {
	Attempt  int    // the attempt that failed
	Limit    string // attempts in all ("∞": unlimited)
	Status   int    // its exit status
	TimedOut bool   // it hit --attempt-timeout
	Delay    string // before the next attempt
	Timeout  string // --attempt-timeout
	Command  string
}

const defaultMessage = `retry: attempt {{.Attempt}}/{{.Limit}} {{if .TimedOut}}timed out after {{.Timeout}} (exit {{.Status}}){{else}}exited {{.Status}}{{end}}; next attempt in {{.Delay}}`

// retryMessage parses --message (default: defaultMessage); a line ends it.
func retryMessage(s string) (*template.Template, error) {
	if s == "" {
		s = defaultMessage
	}
	t, err := template.New("message").Option("missingkey=error").Parse(strings.TrimSuffix(s, "\n") + "\n")
	if err != nil {
		return nil, err
	}
	// Executed once on sample data, so that a bad field fails now, not at
	// the first retry.
	if err := t.Execute(io.Discard, messageData{}); err != nil {
		return nil, err
	}
	return t, nil
}

// parseSignal reads TERM, SIGTERM, term or 15.
func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("a signal number is in 1-64")
		}
		return syscall.Signal(n), nil
	}
	switch strings.TrimPrefix(strings.ToUpper(s), "SIG") {
	case "TERM":
		return syscall.SIGTERM, nil
	case "INT":
		return syscall.SIGINT, nil
	case "HUP":
		return syscall.SIGHUP, nil
	case "QUIT":
		return syscall.SIGQUIT, nil
	case "KILL":
		return syscall.SIGKILL, nil
	case "USR1":
		return syscall.SIGUSR1, nil
	case "USR2":
		return syscall.SIGUSR2, nil
	}
	return 0, fmt.Errorf("must be TERM, INT, HUP, QUIT, KILL, USR1, USR2 or a number")
}
