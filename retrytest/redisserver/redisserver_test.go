package redisserver

import (
	"testing"

	"go.uber.org/goleak"
)

// The server's waiter goroutine ends with Stop, run by each test's cleanup.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStopAndStartKeepThePort: a started server answers PING; stopped, it
// refuses connections; started again, it answers on the same address; a
// second Start of a running server is refused.
func TestStopAndStartKeepThePort(t *testing.T) {
	s := ForTest(t)
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	if err := s.Start(); err == nil {
		t.Error("Start of a running server: no error")
	}
	addr := s.Addr
	s.Stop()
	if err := ping(addr); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Stop() // a second Stop does nothing
	if err := s.Start(); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if s.Addr != addr {
		t.Errorf("address %s after restart, want %s", s.Addr, addr)
	}
	if err := ping(s.Addr); err != nil {
		t.Fatalf("PING after restart: %v", err)
	}
}
