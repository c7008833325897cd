// Package dynalite starts the npm package dynalite, a DynamoDB-compatible
// server, on a free port of 127.0.0.1 for tests, and stops it after.
package dynalite

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jittered/retry/retrytest/internal/loopback"
)

// RequireEnv, when set to 1, turns a missing node or dynalite from a skip
// into a test failure. .ci/run sets it: CI must not skip these tests.
const RequireEnv = "RETRY_REQUIRE_DYNALITE"

// Server is a running dynalite.
type Server struct {
	URL string
	cmd *exec.Cmd
}

// FindDir walks up from the working directory to the repository's
// tools/dynalite (the folder whose package-lock.json pins dynalite) and
// returns it if dynalite is installed there (npm ci).
func FindDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		cand := filepath.Join(dir, "tools", "dynalite")
		if _, err := os.Stat(filepath.Join(cand, "package-lock.json")); err == nil {
			if _, err := os.Stat(filepath.Join(cand, "node_modules", "dynalite", "cli.js")); err != nil {
				return "", fmt.Errorf("dynalite is not installed in %s: run npm ci --ignore-scripts there (scripts/test-all.sh does)", cand)
			}
			return cand, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no tools/dynalite above the working directory")
		}
		dir = parent
	}
}

// Start starts dynalite from dir on a free loopback port and waits until it
// listens. Tables are created and deleted at once.
func Start(dir string) (*Server, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("dynalite needs node: %w", err)
	}
	port, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(node, filepath.Join(dir, "node_modules", "dynalite", "cli.js"),
		"--host", "127.0.0.1", "--port", fmt.Sprint(port),
		"--createTableMs", "0", "--deleteTableMs", "0", "--updateTableMs", "0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting dynalite: %w", err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "listening") {
				ready <- nil
				io.Copy(io.Discard, out)
				return
			}
		}
		ready <- errors.New("dynalite exited before listening")
	}()
	select {
	case err := <-ready:
		if err != nil {
			s.Close()
			return nil, err
		}
	case <-time.After(30 * time.Second):
		s.Close()
		return nil, errors.New("dynalite did not listen within 30s")
	}
	return s, nil
}

// Close stops dynalite and waits for it to exit.
func (s *Server) Close() error {
	if s.cmd.Process == nil {
		return nil
	}
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	return nil
}

// ForTest starts dynalite for t and stops it when t ends. When node or
// dynalite is missing it skips t with the reason, or fails it if
// RETRY_REQUIRE_DYNALITE=1.
func ForTest(t testing.TB) *Server {
	t.Helper()
	fail := t.Skipf
	if os.Getenv(RequireEnv) == "1" {
		fail = t.Fatalf
	}
	if _, err := exec.LookPath("node"); err != nil {
		fail("dynalite tests need node (not found: %v); CI installs it", err)
		return nil
	}
	dir, err := FindDir()
	if err != nil {
		fail("%v", err)
		return nil
	}
	s, err := Start(dir)
	if err != nil {
		t.Fatalf("dynalite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
