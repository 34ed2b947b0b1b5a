package worker

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// procNetFile is one of /proc/net's socket tables and the socket state
// that holds a port in it ("" for any).
type procNetFile struct{ name, listen string }

// ListeningPorts lists the TCP ports listening and the UDP ports bound on
// this host within [lo, hi], read from procDir/net/{tcp,tcp6,udp,udp6}.
//
// On the host's own /proc, TCP is asked of the kernel through netlink
// (tcpListeningPorts), which is much cheaper, and /proc/net/tcp{,6} are
// read only if that fails.
func ListeningPorts(procDir string, lo, hi int) ([]int, error) {
	seen := map[int]bool{}
	found := false
	files := []procNetFile{{"tcp", "0A"}, {"tcp6", "0A"}, {"udp", ""}, {"udp6", ""}}
	if procDir == "/proc" && tcpListeningPorts(lo, hi, seen) == nil {
		files, found = files[2:], true
	}
	for _, f := range files {
		file, err := os.Open(procDir + "/net/" + f.name)
		if err != nil {
			continue // no IPv6, for one
		}
		found = true
		sc := bufio.NewScanner(file)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || (f.listen != "" && fields[3] != f.listen) {
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if err == nil && int(port) >= lo && int(port) <= hi {
				seen[int(port)] = true
			}
		}
		file.Close()
	}
	if !found {
		return nil, fmt.Errorf("read sockets: no %s/net/tcp", procDir)
	}
	out := make([]int, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out, nil
}
