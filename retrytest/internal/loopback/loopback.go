// Package loopback holds what the servers retrytest starts for tests
// (dynalite, redis-server) share.
package loopback

import "net"

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago: the
// port of a listener opened and closed at once, for a server process that
// takes its port as an argument.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
