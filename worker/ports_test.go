package worker

import (
	"net"
	"slices"
	"testing"
)

func TestListeningPorts(t *testing.T) {
	t.Parallel()
	const (
		tcpHead  = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
		tcp6Head = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
		udpHead  = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
	)
	tests := []struct {
		name    string
		files   map[string]string // under net/
		lo, hi  int
		want    []int
		wantErr bool
	}{
		{
			name: "tcp listening, not established",
			files: map[string]string{"tcp": tcpHead +
				// 20000 listening on 127.0.0.1, 20001 an established connection,
				// 20005 listening on 0.0.0.0.
				"   0: 0100007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 30123 1 0000000000000000 100 0 0 10 0\n" +
				"   1: 0100007F:4E21 0100007F:A3B2 01 00000000:00000000 02:000A1234 00000000  1000        0 30456 2 0000000000000000 20 4 30 10 -1\n" +
				"   2: 00000000:4E25 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 30789 1 0000000000000000 100 0 0 10 0\n" +
				"   3: 0100007F:4E26 0100007F:4E20 06 00000000:00000000 03:00001772 00000000     0        0 0 3 0000000000000000\n"},
			lo: 20000, hi: 20099,
			want: []int{20000, 20005},
		},
		{
			name: "range bounds are inclusive",
			files: map[string]string{"tcp": tcpHead +
				"   0: 00000000:4E1F 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0\n" +
				"   1: 00000000:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 100 0 0 10 0\n" +
				"   2: 00000000:4E83 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 100 0 0 10 0\n" +
				"   3: 00000000:4E84 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4 1 0000000000000000 100 0 0 10 0\n" +
				"   4: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0\n"},
			lo: 20000, hi: 20099,
			want: []int{20000, 20099},
		},
		{
			name: "tcp6 listening, udp and udp6 in any state",
			files: map[string]string{
				"tcp": tcpHead,
				"tcp6": tcp6Head +
					"   0: 00000000000000000000000000000000:4E22 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 11 1 0000000000000000 100 0 0 10 0\n" +
					"   1: 0000000000000000FFFF00000100007F:4E23 0000000000000000FFFF00000100007F:C350 01 00000000:00000000 00:00000000 00000000  1000        0 12 1 0000000000000000 20 4 30 10 -1\n",
				"udp": udpHead +
					"  123: 00000000:4E24 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 13 2 0000000000000000 0\n" +
					"  124: 0100007F:4E26 0100007F:0035 01 00000000:00000000 00:00000000 00000000  1000        0 14 2 0000000000000000 0\n",
				"udp6": udpHead +
					"  125: 00000000000000000000000000000000:4E28 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 15 2 0000000000000000 0\n",
			},
			lo: 20000, hi: 20099,
			want: []int{20002, 20004, 20006, 20008},
		},
		{
			name: "one port in many sockets is listed once",
			files: map[string]string{
				"tcp": tcpHead +
					"   0: 0100007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0\n" +
					"   1: 0200007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 100 0 0 10 0\n",
				"tcp6": tcp6Head +
					"   0: 00000000000000000000000000000000:4E20 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 100 0 0 10 0\n",
				"udp": udpHead +
					"  123: 00000000:4E20 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4 2 0000000000000000 0\n",
			},
			lo: 20000, hi: 20099,
			want: []int{20000},
		},
		{
			name: "malformed lines are skipped",
			files: map[string]string{"tcp": tcpHead +
				"garbage\n" +
				"\n" +
				"   0: 0100007F:4E21\n" +
				"   1: 0100007F 00000000:0000 0A\n" +
				"   2: 0100007F:ZZZZ 00000000:0000 0A\n" +
				"   3: 0100007F:14E20 00000000:0000 0A\n" +
				"   4: 0100007F:4E20 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0\n"},
			lo: 20000, hi: 20099,
			want: []int{20000},
		},
		{
			name: "the first line is the header",
			// Whatever it holds, the first line is never read as a socket.
			files: map[string]string{"tcp": "   0: 0100007F:4E20 00000000:0000 0A\n"},
			lo:    20000, hi: 20099,
			want: nil,
		},
		{
			name:  "empty files",
			files: map[string]string{"tcp": "", "udp": ""},
			lo:    1, hi: 65535,
			want: nil,
		},
		{
			name:  "no socket files",
			files: map[string]string{},
			lo:    1, hi: 65535,
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, text := range tc.files {
				writeNetFile(t, dir, name, text)
			}
			got, err := ListeningPorts(dir, tc.lo, tc.hi)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ListeningPorts = %v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ListeningPorts = %v, want %v", got, tc.want)
			}
		})
	}
}

// Against this host's own sockets: a TCP listener and a bound UDP socket
// are found, the local port of an outgoing TCP connection is not.
func TestListeningPortsOfThisHost(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	tcpPort := l.Addr().(*net.TCPAddr).Port
	udpPort := u.LocalAddr().(*net.UDPAddr).Port
	outPort := c.LocalAddr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		port int
		want []int
	}{
		{tcpPort, []int{tcpPort}},
		{udpPort, []int{udpPort}},
		{outPort, nil},
	} {
		got, err := ListeningPorts("/proc", tc.port, tc.port)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ListeningPorts(%d) = %v, want %v", tc.port, got, tc.want)
		}
	}
}
