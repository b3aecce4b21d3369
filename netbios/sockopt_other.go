//go:build !linux

package netbios

import "net"

// growSendBuffer sets the socket's send buffer as far as the system allows.
func growSendBuffer(c *net.UDPConn, n int) { _ = c.SetWriteBuffer(n) }
