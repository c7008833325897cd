package cli

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Attempt is one run of the wrapped command.
type Attempt struct {
	Argv           []string
	Stdin          io.Reader // nil: /dev/null
	Stdout, Stderr io.Writer
	// Timeout, if positive, ends the attempt: SIGTERM to the command's
	// whole process group, then SIGKILL after Grace (0: at once).
	Timeout, Grace time.Duration
	// Signals received meanwhile are forwarded to the process group (and
	// SIGKILL follows after Grace if it is still running).
	Signals <-chan os.Signal
	// Stop is the signal that ends an attempt on Timeout or at the run's
	// end (0: SIGTERM).
	Stop syscall.Signal
	// Foreground runs the command in retry's own process group, so that it
	// may read the terminal; Stop and SIGKILL then reach the command only,
	// not its children (as timeout --foreground).
	Foreground bool
}

// Outcome is how an attempt ended.
type Outcome struct {
	Code     int       // exit status; 128+n when killed by signal n
	TimedOut bool      // ended by Attempt.Timeout or the run's end (ctx)
	Killed   bool      // SIGKILL was needed: it outlived Attempt.Grace
	Signal   os.Signal // a signal received and forwarded, if any
}

// Runner runs attempts. The real one starts processes; tests inject fakes.
type Runner interface {
	Run(ctx context.Context, a Attempt) (Outcome, error)
}

// ErrNotFound and ErrCannotRun are returned by a Runner when the command
// cannot be started.
var (
	ErrNotFound  = errors.New("command not found")
	ErrCannotRun = errors.New("command cannot be executed")
)

// launchError is why a command could not be started, in the words an
// operator expects from a shell ("permission denied", "bad interpreter:
// no such file or directory").
type launchError struct {
	reason string
	err    error
}

func (e *launchError) Error() string { return e.reason }
func (e *launchError) Unwrap() error { return e.err }

// osReason is the operating system's reason in err ("permission denied",
// "exec format error"…), or def if there is none.
func osReason(err error, def string) string {
	var le *launchError
	if errors.As(err, &le) {
		return le.reason
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return def
}

// blockingReader is a reader whose Read may wait for input that never
// comes, and whose Close makes it return (retry's stdin tape).
type blockingReader interface {
	io.ReadCloser
	blocking()
}

type execRunner struct{}

func (execRunner) Run(ctx context.Context, a Attempt) (Outcome, error) {
	path, err := exec.LookPath(a.Argv[0])
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return Outcome{Code: ExitNotFound}, errors.Join(ErrNotFound, err)
		}
		return Outcome{Code: ExitCannotRun}, errors.Join(ErrCannotRun, err)
	}
	cmd := exec.Command(path, a.Argv[1:]...)
	cmd.Args[0] = a.Argv[0]
	cmd.Stdout, cmd.Stderr = a.Stdout, a.Stderr
	if !a.Foreground {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	// A reader that may block waiting for input (retry's stdin tape) is
	// copied by our own goroutine, ended when the command exits: exec's
	// copy would make Wait wait for input that may never come.
	var stdinRC io.ReadCloser
	var stdinW io.WriteCloser
	if rc, ok := a.Stdin.(blockingReader); ok {
		w, err := cmd.StdinPipe()
		if err != nil {
			return Outcome{Code: ExitFailure}, err
		}
		stdinRC, stdinW = rc, w
	} else {
		cmd.Stdin = a.Stdin
	}
	if err := cmd.Start(); err != nil {
		if stdinW != nil {
			stdinW.Close()
		}
		if errors.Is(err, os.ErrNotExist) {
			// The file exists (LookPath found it): what is missing is the
			// interpreter its #! line names. sh and timeout answer 127.
			return Outcome{Code: ExitNotFound}, errors.Join(ErrNotFound, &launchError{reason: "bad interpreter: " + osReason(err, "no such file or directory"), err: err})
		}
		return Outcome{Code: ExitCannotRun}, errors.Join(ErrCannotRun, err)
	}
	var copied chan struct{}
	if stdinRC != nil {
		copied = make(chan struct{})
		go func() {
			io.Copy(stdinW, stdinRC) // ends with an error once the command is gone
			stdinW.Close()
			close(copied)
		}()
	}
	pgid := cmd.Process.Pid
	stopSig := a.Stop
	if stopSig == 0 {
		stopSig = syscall.SIGTERM
	}
	// kill signals the command's process group, or the command alone in
	// the foreground.
	kill := func(sig syscall.Signal) {
		if a.Foreground {
			syscall.Kill(pgid, sig)
			return
		}
		syscall.Kill(-pgid, sig)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }() // always reaped: no zombies

	var out Outcome
	var timeout, killAt <-chan time.Time
	if a.Timeout > 0 {
		t := time.NewTimer(a.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	startKill := func() {
		if killAt == nil {
			// Grace 0 means SIGKILL at once (--grace 0).
			killAt = time.After(max(a.Grace, 0))
		}
	}
	ctxDone := ctx.Done()
	for {
		select {
		case err := <-done:
			if copied != nil {
				stdinRC.Close() // a Read waiting for input returns
				<-copied
			}
			out.Code = exitStatus(cmd.ProcessState, err)
			// The leader is gone; make sure no member of its group lingers
			// after a timeout or a forwarded signal.
			if (out.TimedOut || out.Signal != nil) && !a.Foreground {
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
			return out, nil
		case <-timeout:
			out.TimedOut = true
			timeout = nil
			kill(stopSig)
			startKill()
		case s := <-a.Signals:
			out.Signal = s
			if sig, ok := s.(syscall.Signal); ok {
				kill(sig)
			}
			startKill()
		case <-ctxDone:
			ctxDone = nil
			out.TimedOut = out.Signal == nil
			kill(stopSig)
			startKill()
		case <-killAt:
			killAt = nil
			out.Killed = true
			kill(syscall.SIGKILL)
		}
	}
}

func exitStatus(ps *os.ProcessState, err error) int {
	if ps == nil {
		return ExitFailure // the wait itself failed: retry's own failure
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}
