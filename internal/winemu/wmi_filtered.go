package winemu

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// FilteredPort is a TCP port on which connection attempts go unanswered,
// as behind a firewall that drops them: a listening socket with a backlog
// of one whose accept queue is kept full and never accepted from, so
// the kernel drops every further SYN and a client's connect hangs until
// its own deadline. It sends no traffic anywhere; it only makes the
// local kernel stay silent.
type FilteredPort struct {
	// Addr is the address and port that drops connection attempts.
	Addr netip.AddrPort

	mu    sync.Mutex
	ln    *os.File
	fills []net.Conn
}

// ListenFiltered opens a FilteredPort on ip (port chosen by the kernel).
// It works on Linux, where a full accept queue drops SYNs.
func ListenFiltered(ip netip.Addr) (*FilteredPort, error) {
	ip = ip.Unmap()
	if !ip.Is4() {
		return nil, fmt.Errorf("winemu: filtered port: IPv4 only")
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("winemu: filtered port: %w", err)
	}
	f := os.NewFile(uintptr(fd), "filtered-port")
	sa := &syscall.SockaddrInet4{Addr: ip.As4()}
	if err := syscall.Bind(fd, sa); err != nil {
		f.Close()
		return nil, fmt.Errorf("winemu: filtered port: bind: %w", err)
	}
	if err := syscall.Listen(fd, 1); err != nil {
		f.Close()
		return nil, fmt.Errorf("winemu: filtered port: listen: %w", err)
	}
	got, err := syscall.Getsockname(fd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("winemu: filtered port: %w", err)
	}
	in4, ok := got.(*syscall.SockaddrInet4)
	if !ok {
		f.Close()
		return nil, errors.New("winemu: filtered port: unexpected socket address")
	}
	p := &FilteredPort{Addr: netip.AddrPortFrom(ip, uint16(in4.Port)), ln: f}
	// Fill the accept queue (two connections with a backlog of one),
	// then probe until a connect no longer completes: from then on the
	// kernel drops SYNs.
	for i := 0; i < 8; i++ {
		timeout := 2 * time.Second
		if i >= 2 {
			timeout = 100 * time.Millisecond
		}
		c, err := net.DialTimeout("tcp", p.Addr.String(), timeout)
		if err != nil {
			if i < 2 {
				p.Close()
				return nil, fmt.Errorf("winemu: filtered port: fill the accept queue: %w", err)
			}
			return p, nil
		}
		p.fills = append(p.fills, c)
	}
	p.Close()
	return nil, errors.New("winemu: filtered port: the kernel does not drop connections on a full accept queue")
}

// Close closes the port and the connections that fill its queue.
func (p *FilteredPort) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.fills {
		c.Close()
	}
	p.fills = nil
	if p.ln != nil {
		err := p.ln.Close()
		p.ln = nil
		return err
	}
	return nil
}
