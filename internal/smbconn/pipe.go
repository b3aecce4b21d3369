package smbconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	smb2 "github.com/oiweiwei/go-smb2.fork"
)

// pipeReadSize is the size of one SMB2 READ on a pipe: one credit. RPC
// fragments are at most a few KiB, so a whole message always fits.
const pipeReadSize = 64 << 10

// pipeBufs recycles the READ buffers of the process's Pipes. A buffer
// belongs to one READ while it is in flight; what the server sent is then
// copied out (a few hundred bytes, usually) and the buffer goes back. A
// fresh 64 KiB per READ was a fifth of everything a 64-host bulk connect
// allocated (docs/design.md). It holds nothing a caller can observe.
var pipeBufs = sync.Pool{New: func() any { return new([pipeReadSize]byte) }}

// closeTimeout bounds the CLOSE and TREE_DISCONNECT of Pipe.Close. Samba
// hands pipes to samba-dcerpcd, which can take a second or more to answer
// on a loaded machine.
const closeTimeout = 5 * time.Second

// Pipe is an open RPC named pipe (for example \pipe\winreg) on a Session,
// used as a net.Conn: Write sends one message, Read returns the bytes of
// the server's messages in order. Read and write deadlines are honoured.
// It does not speak DCE/RPC itself; hand it to an RPC client.
type Pipe struct {
	name  string
	local net.Addr
	peer  net.Addr
	share *smb2.Share
	file  *smb2.File

	ctx    context.Context // bound to the file; cancelled on Close
	cancel context.CancelFunc

	rmu     sync.Mutex // serialises Read
	unread  []byte
	pending chan readResult // non-nil while a READ is in flight
	wmu     sync.Mutex      // serialises Write

	dlMu      sync.Mutex
	readDL    time.Time
	writeDL   time.Time
	closeOnce sync.Once
	closed    chan struct{}
}

type readResult struct {
	b   []byte
	err error
}

// pipeAddr is the net.Addr of a Pipe.
type pipeAddr string

func (a pipeAddr) Network() string { return "smb-pipe" }
func (a pipeAddr) String() string  { return string(a) }

// OpenPipe opens the named pipe name ("winreg", "svcctl"; a leading
// \pipe\ is accepted) on the session's IPC$ share, with a tree connect of
// its own so that Close releases everything on the server. ctx bounds the
// open only. It retries while the server reports the pipe busy
// (STATUS_PIPE_NOT_AVAILABLE) until ctx ends.
func (s *Session) OpenPipe(ctx context.Context, name string) (_ *Pipe, err error) {
	defer recoverInto(&err)
	fail := func(err error) (*Pipe, error) {
		return nil, &Error{Op: "open pipe " + name, Host: s.host, Info: s.info, Err: err}
	}
	n := strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(name), `\pipe\`), `pipe\`)
	if n == "" || strings.ContainsAny(n, `\/:*?"<>|`) {
		return fail(fmt.Errorf("%w: pipe name %q", ErrBadInput, name))
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	share, err := s.Mount(ctx, "IPC$")
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	var f *smb2.File
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		f, err = share.WithContext(pctx).OpenFile(n, os.O_RDWR, 0o666)
		if err == nil || !errors.Is(mapErr(err, 0), StatusPipeNotAvailable) {
			break
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if ctx.Err() != nil {
			break
		}
	}
	if !stop() || err != nil {
		cancel()
		uctx, ucancel := context.WithTimeout(context.Background(), time.Second)
		_ = share.WithContext(uctx).Umount()
		ucancel()
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		return fail(mapErr(err, 0))
	}
	return &Pipe{
		name:   n,
		local:  pipeAddr("local"),
		peer:   pipeAddr(s.SharePath("IPC$") + `\` + n),
		share:  share,
		file:   f,
		ctx:    pctx,
		cancel: cancel,
		closed: make(chan struct{}),
	}, nil
}

// Name returns the pipe's name without the \pipe\ prefix.
func (p *Pipe) Name() string { return p.name }

// Read reads from the pipe. One SMB2 READ is in flight at a time; a read
// that reaches its deadline leaves it in flight and the next Read
// continues to wait for it, so no data is lost.
func (p *Pipe) Read(b []byte) (int, error) {
	p.rmu.Lock()
	defer p.rmu.Unlock()
	if len(p.unread) > 0 {
		n := copy(b, p.unread)
		p.unread = p.unread[n:]
		return n, nil
	}
	if len(b) == 0 {
		return 0, nil
	}
	select {
	case <-p.closed:
		return 0, net.ErrClosed
	default:
	}
	if p.pending == nil {
		ch := make(chan readResult, 1)
		p.pending = ch
		go func() {
			var res readResult
			defer func() {
				if r := recover(); r != nil {
					res = readResult{nil, panicErr(r)}
				}
				ch <- res
			}()
			buf := pipeBufs.Get().(*[pipeReadSize]byte)
			n, err := p.file.ReadAt(buf[:], 0)
			n = min(max(n, 0), pipeReadSize)
			if errors.Is(err, io.EOF) && n > 0 {
				err = nil
			}
			// go-smb2 has returned: it no longer writes to buf. (After
			// a panic buf is not reused.)
			res = readResult{append([]byte(nil), buf[:n]...), err}
			pipeBufs.Put(buf)
		}()
	}
	var timeout <-chan time.Time
	if dl := p.deadline(&p.readDL); !dl.IsZero() {
		d := time.Until(dl)
		if d <= 0 {
			return 0, os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case r := <-p.pending:
		p.pending = nil
		if r.err != nil {
			select {
			case <-p.closed:
				return 0, net.ErrClosed
			default:
			}
			return 0, &Error{Op: "read pipe " + p.name, Err: mapErr(r.err, 0)}
		}
		n := copy(b, r.b)
		p.unread = r.b[n:]
		return n, nil
	case <-timeout:
		return 0, os.ErrDeadlineExceeded
	case <-p.closed:
		return 0, net.ErrClosed
	}
}

// Write writes b to the pipe as one message (split by go-smb2 only when
// larger than the server's maximum write size).
func (p *Pipe) Write(b []byte) (_ int, err error) {
	defer recoverInto(&err)
	p.wmu.Lock()
	defer p.wmu.Unlock()
	select {
	case <-p.closed:
		return 0, net.ErrClosed
	default:
	}
	if dl := p.deadline(&p.writeDL); !dl.IsZero() && !time.Now().Before(dl) {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := p.file.WriteAt(b, 0)
	if err != nil {
		if n < 0 {
			n = 0
		}
		return n, &Error{Op: "write pipe " + p.name, Err: mapErr(err, 0)}
	}
	return n, nil
}

// Close closes the pipe and its tree connect, waiting at most 5 s for the
// server. It interrupts a Read in flight and returns without waiting for
// the server in that case. It is safe to call more than once.
//
// go-smb2 cannot cancel an SMB2 READ on the server, and Samba holds a
// CLOSE or TREE_DISCONNECT until the pipe's pending READ completes. So
// when a READ is in flight, Close abandons it locally and disconnects the
// tree in the background (bounded by 5 s); the server releases the handle
// then, or at the latest when the Session logs off.
func (p *Pipe) Close() (err error) {
	defer recoverInto(&err)
	p.closeOnce.Do(func() {
		close(p.closed)
		p.rmu.Lock()
		inFlight := p.pending != nil
		p.rmu.Unlock()
		if !inFlight {
			ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
			defer cancel()
			// The File is bound to p.ctx: cancel it if the server stalls.
			stop := context.AfterFunc(ctx, p.cancel)
			defer stop()
			if e := p.file.Close(); e != nil {
				err = &Error{Op: "close pipe " + p.name, Err: mapErr(e, 0)}
			}
			p.cancel()
			if e := p.share.WithContext(ctx).Umount(); e != nil && err == nil {
				err = &Error{Op: "close pipe " + p.name, Err: mapErr(e, 0)}
			}
			return
		}
		// A READ in flight shares the File with a CLOSE that go-smb2 does
		// not synchronise: cancel it, then disconnect the tree.
		p.cancel()
		go func() {
			defer func() { _ = recover() }() // best effort; see panicErr
			p.rmu.Lock()
			if p.pending != nil {
				<-p.pending
				p.pending = nil
			}
			p.rmu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = p.share.WithContext(ctx).Umount()
		}()
	})
	return err
}

func (p *Pipe) deadline(dl *time.Time) time.Time {
	p.dlMu.Lock()
	defer p.dlMu.Unlock()
	return *dl
}

// LocalAddr returns a placeholder address.
func (p *Pipe) LocalAddr() net.Addr { return p.local }

// RemoteAddr returns \\host\IPC$\name.
func (p *Pipe) RemoteAddr() net.Addr { return p.peer }

// SetDeadline sets the read and write deadlines.
func (p *Pipe) SetDeadline(t time.Time) error {
	p.dlMu.Lock()
	defer p.dlMu.Unlock()
	p.readDL, p.writeDL = t, t
	return nil
}

// SetReadDeadline sets the read deadline.
func (p *Pipe) SetReadDeadline(t time.Time) error {
	p.dlMu.Lock()
	defer p.dlMu.Unlock()
	p.readDL = t
	return nil
}

// SetWriteDeadline sets the write deadline. It is checked before a write
// starts; a write in progress is not interrupted.
func (p *Pipe) SetWriteDeadline(t time.Time) error {
	p.dlMu.Lock()
	defer p.dlMu.Unlock()
	p.writeDL = t
	return nil
}

// PipeDialer opens a named pipe on a Session each time DialContext is
// called, ignoring network and address. Its method set matches
// go-msrpc's dcerpc.Dialer, so an RPC client given
// dcerpc.WithDialer(dialer) and a placeholder ncacn_ip_tcp binding talks
// over the existing session instead of logging on again. Make the
// placeholder an IP literal ("ncacn_ip_tcp:127.0.0.1[1]"): go-msrpc
// resolves a host name through DNS before dialling. Use one dcerpc.Dial
// per pipe.
type PipeDialer struct {
	Session *Session
	Pipe    string
}

// DialContext opens the pipe; network and address are ignored.
func (d PipeDialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	if d.Session == nil {
		return nil, fmt.Errorf("%w: PipeDialer without a Session", ErrBadInput)
	}
	return d.Session.OpenPipe(ctx, d.Pipe)
}
