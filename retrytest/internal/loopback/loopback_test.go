package loopback

import (
	"net"
	"strconv"
	"testing"
)

// TestFreePortIsFree: the port returned can be listened on at once.
func TestFreePortIsFree(t *testing.T) {
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if p <= 0 || p > 65535 {
		t.Fatalf("port %d out of range", p)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		t.Fatalf("listening on the free port %d: %v", p, err)
	}
	l.Close()
}
