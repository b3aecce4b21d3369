package netbios

import (
	"net"
	"syscall"
)

// growSendBuffer sets the socket's send buffer to n bytes, beyond
// net.core.wmem_max when the process may (SO_SNDBUFFORCE needs
// CAP_NET_ADMIN), and as far as wmem_max otherwise.
func growSendBuffer(c *net.UDPConn, n int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, n) != nil {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, n)
		}
	})
}
