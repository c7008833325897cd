// Package redisserver starts a real redis-server (Debian's redis-server
// package) on a free port of 127.0.0.1 for tests, without persistence, and
// stops it after. A test can stop and restart it on the same port, as an
// outage of the fleet's Redis.
package redisserver

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jittered/retry/retrytest/internal/loopback"
)

// RequireEnv, when set to 1, turns a missing redis-server from a skip into
// a test failure. .ci/run sets it: CI must not skip these tests.
const RequireEnv = "RETRY_REQUIRE_REDIS"

// readyTimeout bounds the wait for a started server to answer PING.
const readyTimeout = 10 * time.Second

// Server is a redis-server on 127.0.0.1. Its methods are safe for
// concurrent use.
type Server struct {
	// Addr is host:port, for go-redis's Options.Addr.
	Addr string
	// Port is Addr's port; it stays the same across Stop and Start.
	Port int

	bin, dir string
	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{} // closed when cmd has exited
}

// Binary returns the path of redis-server on PATH.
func Binary() (string, error) {
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server not found (install Debian's redis-server package): %w", err)
	}
	return p, nil
}

// Start starts redis-server on a free loopback port, keeping its log in dir
// (which must exist), and waits until it answers PING.
func Start(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	port, err := loopback.FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Port: port, bin: bin, dir: dir}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start starts a stopped server again on the same port, with no data, and
// waits until it answers PING. Starting a running server is an error.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("redis-server on port %d is already running", s.Port)
	}
	logFile := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command(s.bin, "--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--logfile", logFile)
	// Never outlive the test process, even if it is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	s.cmd = cmd
	deadline := time.Now().Add(readyTimeout)
	for {
		err := ping(s.Addr)
		if err == nil {
			s.exited = exited
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logFile)
			s.cmd = nil
			return fmt.Errorf("redis-server on port %d exited before answering PING:\n%s", s.Port, log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logFile)
			cmd.Process.Kill()
			<-exited
			s.cmd = nil
			return fmt.Errorf("redis-server on port %d does not answer PING after %v: %v\n%s", s.Port, readyTimeout, err, log)
		}
	}
}

// Stop kills the server (SIGKILL: as a crash, nothing saved) and waits for
// it to exit. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// ping sends one PING over a fresh connection and expects +PONG.
func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return errors.New("PING answered " + strconv.Quote(line))
	}
	return nil
}

// ForTest starts a redis-server for t and stops it when t ends. When
// redis-server is missing it skips t with the reason, or fails it if
// RETRY_REQUIRE_REDIS=1.
func ForTest(t testing.TB) *Server {
	t.Helper()
	if _, err := Binary(); err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%v (%s=1 forbids skipping)", err, RequireEnv)
		}
		t.Skipf("%v", err)
	}
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}
