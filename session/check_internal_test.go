package session

import (
	"context"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestProbePort: an open port, a closed one (reset: refused) and one that
// does not answer (filtered, not refused). The silent port is a listener
// whose accept queue is full: Linux then drops the SYN, as a firewall
// that drops does.
func TestProbePort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open := ln.Addr().(*net.TCPAddr).Port
	if it := probePort(context.Background(), "127.0.0.1", open); it.Status != CheckOK || it.Value != "open" {
		t.Errorf("open port: %+v", it)
	}
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln2.Addr().(*net.TCPAddr).Port
	ln2.Close()
	if it := probePort(context.Background(), "127.0.0.1", closed); it.Status != CheckFail || it.Value != "refused" {
		t.Errorf("closed port: %+v", it)
	}

	// A listening socket with a backlog of 0 that never accepts.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := syscall.Getsockname(fd)
	silent := sa.(*syscall.SockaddrInet4).Port
	// Fill the accept queue; the connections that complete stay open.
	var held []net.Conn
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	// Until one dial gets no answer: the queue is full.
	for range 8 {
		c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(silent)), time.Second)
		if err != nil {
			break
		}
		held = append(held, c)
	}
	if len(held) == 0 {
		t.Fatal("no connection completed on the listener with an empty queue")
	}
	t0 := time.Now()
	it := probePort(context.Background(), "127.0.0.1", silent)
	if it.Status != CheckFail || it.Value != "filtered" {
		t.Errorf("silent port: %+v after %v (%d connections held)", it, time.Since(t0), len(held))
	}
	if d := time.Since(t0); d < DefaultCheckDialTimeout-100*time.Millisecond || d > DefaultCheckDialTimeout+10*time.Second {
		t.Errorf("silent port answered after %v, want the dial timeout %v", d, DefaultCheckDialTimeout)
	}
}
