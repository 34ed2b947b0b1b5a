package worker

import (
	"maps"
	"net"
	"slices"
	"testing"
)

// TestTCPListeningPortsNetlink checks the netlink answer on this host:
// listening ports, IPv6 included, and none of the established ones.
func TestTCPListeningPortsNetlink(t *testing.T) {
	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l4.Close()
	l6, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l6.Close()
	c, err := net.Dial("tcp4", l4.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := map[int]bool{}
	if err := tcpListeningPorts(1, 65535, got); err != nil {
		t.Fatal(err)
	}
	for _, l := range []net.Listener{l4, l6} {
		if p := l.Addr().(*net.TCPAddr).Port; !got[p] {
			t.Errorf("listening port %d missing from %v", p, slices.Sorted(maps.Keys(got)))
		}
	}
	if p := c.LocalAddr().(*net.TCPAddr).Port; got[p] {
		t.Errorf("established port %d listed", p)
	}
}
