package worker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
)

// Netlink sock_diag constants (linux/sock_diag.h, linux/inet_diag.h).
const (
	sockDiagByFamily = 20
	tcpListen        = 10
	inetDiagReqLen   = 56 // struct inet_diag_req_v2
)

// tcpListeningPorts lists the TCP ports listening on this host (IPv4 and
// IPv6) within [lo, hi] through netlink sock_diag. Asking for listening
// sockets only, the kernel walks just its listening hash; reading
// /proc/net/tcp walks every established-socket bucket, which costs
// milliseconds per read on a host with much memory.
func tcpListeningPorts(lo, hi int, seen map[int]bool) error {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_INET_DIAG)
	if err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	for i, family := range []uint8{syscall.AF_INET, syscall.AF_INET6} {
		if err := diagDump(fd, uint32(i+1), family, lo, hi, seen); err != nil {
			return err
		}
	}
	return nil
}

// diagDump asks for one family's listening TCP sockets and reads the
// answer up to NLMSG_DONE.
func diagDump(fd int, seq uint32, family uint8, lo, hi int, seen map[int]bool) error {
	req := make([]byte, syscall.NLMSG_HDRLEN+inetDiagReqLen)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], sockDiagByFamily)
	binary.NativeEndian.PutUint16(req[6:], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], seq)
	body := req[syscall.NLMSG_HDRLEN:]
	body[0], body[1] = family, syscall.IPPROTO_TCP
	binary.NativeEndian.PutUint32(body[4:], 1<<tcpListen)
	if err := syscall.Sendto(fd, req, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag: %w", err)
	}
	buf := make([]byte, 64<<10)
	for {
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("sock_diag: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("sock_diag: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case syscall.NLMSG_DONE:
				return nil
			case syscall.NLMSG_ERROR:
				return errors.New("sock_diag: the kernel refused the dump")
			}
			// struct inet_diag_msg: family, state, timer, retrans, then
			// the socket id, whose first field is the source port in
			// network byte order.
			if len(m.Data) < 6 || m.Data[1] != tcpListen {
				continue
			}
			if port := int(binary.BigEndian.Uint16(m.Data[4:6])); port >= lo && port <= hi {
				seen[port] = true
			}
		}
	}
}
