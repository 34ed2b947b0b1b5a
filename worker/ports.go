package worker

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// ListeningPorts lists the TCP ports listening and the UDP ports bound on
// this host within [lo, hi], read from procDir/net/{tcp,tcp6,udp,udp6}.
func ListeningPorts(procDir string, lo, hi int) ([]int, error) {
	seen := map[int]bool{}
	found := false
	for _, f := range []struct {
		name   string
		listen string // the socket state that holds the port; "" for any
	}{{"tcp", "0A"}, {"tcp6", "0A"}, {"udp", ""}, {"udp6", ""}} {
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
