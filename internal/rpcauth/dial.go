package rpcauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
)

// Backoff is an exponential retry schedule bounded by the caller's
// context. The zero value waits 10 ms, then doubles up to 500 ms.
type Backoff struct {
	// Initial is the first wait; 0 means 10 ms.
	Initial time.Duration
	// Max caps each wait; 0 means 500 ms.
	Max time.Duration
}

func (b Backoff) initial() time.Duration {
	if b.Initial > 0 {
		return b.Initial
	}
	return 10 * time.Millisecond
}

func (b Backoff) max() time.Duration {
	if b.Max > 0 {
		return b.Max
	}
	return 500 * time.Millisecond
}

// Retry calls op until it succeeds, fails with an error that retryable
// rejects (nil retryable retries every error), or ctx ends. It waits
// between attempts on the schedule b. When ctx ends first, the error
// matches both ctx.Err() and op's last error.
//
// Retry does not run op concurrently and does not call it after ctx is
// done.
func (b Backoff) Retry(ctx context.Context, op func(context.Context) error, retryable func(error) bool) error {
	wait := b.initial()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var last error // the last attempt's error, kept when the deadline ends the loop
	for {
		if err := ctx.Err(); err != nil {
			if last != nil {
				return errors.Join(err, last)
			}
			return err
		}
		err := op(ctx)
		if err == nil {
			return nil
		}
		last = err
		if retryable != nil && !retryable(err) {
			return err
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-timer.C:
		}
		if wait *= 2; wait > b.max() {
			wait = b.max()
		}
	}
}

// TCPDialer is a go-msrpc dcerpc.Dialer (see dcerpc.WithDialer) that
// honours the caller's context: go-msrpc's own TCP dial uses a fixed
// timeout and ignores cancellation. The zero value is ready to use.
//
// It dials only the address go-msrpc asks for; it does not resolve
// endpoints or retry.
type TCPDialer struct {
	// Dialer is the underlying dialer; the zero value means net.Dialer{}.
	Dialer net.Dialer
}

// DialContext dials addr. A failure names the address (host and port).
func (d *TCPDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.Dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("rpcauth: dial %s: %w", addr, err)
	}
	return c, nil
}

// PipeOpener opens a named pipe such as "svcctl" or "winreg" (without
// "\pipe\") on an SMB session the caller already holds, and returns it as
// a byte stream. Each call opens a new pipe instance.
type PipeOpener func(ctx context.Context, pipe string) (net.Conn, error)

// pipeHost is the placeholder network address of a pipe binding. go-msrpc
// passes it to PipeDialer, which never dials it.
const pipeHost = "smb-pipe.invalid"

// DialPipe returns a go-msrpc connection that runs DCE/RPC over one named
// pipe opened with open on an existing SMB session (go-msrpc's ncacn_np
// would dial and log on again). It works through dcerpc.WithDialer and a
// placeholder ncacn_ip_tcp binding, so bind it once: use one DialPipe per
// pipe and per interface (Samba rejects a second interface bound on the
// first one's association group).
//
// The pipe is opened when the client binds (NewXxxClient), under the
// bind's context; while the server answers that the pipe is not
// available, open is retried with back-off until that context ends.
// retryable decides which errors of open are worth retrying (nil: none).
func DialPipe(ctx context.Context, open PipeOpener, pipe string, backoff Backoff, retryable func(error) bool, opts ...dcerpc.Option) (dcerpc.Conn, error) {
	if open == nil {
		return nil, errors.New("rpcauth: DialPipe needs a PipeOpener")
	}
	pipe = strings.TrimPrefix(strings.TrimPrefix(strings.ToLower(pipe), `\pipe\`), `\`)
	if pipe == "" || strings.ContainsAny(pipe, `\/[]:`) {
		return nil, fmt.Errorf("rpcauth: bad pipe name %q", pipe)
	}
	d := &pipeDialer{open: open, pipe: pipe, backoff: backoff, retryable: retryable}
	all := append([]dcerpc.Option{dcerpc.WithDialer(d), dcerpc.WithNewTransport()}, opts...)
	return dcerpc.Dial(ctx, "ncacn_ip_tcp:"+pipeHost+"[445]", all...)
}

type pipeDialer struct {
	open      PipeOpener
	pipe      string
	backoff   Backoff
	retryable func(error) bool
}

func (d *pipeDialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	var c net.Conn
	retry := d.retryable
	if retry == nil {
		retry = func(error) bool { return false }
	}
	err := d.backoff.Retry(ctx, func(ctx context.Context) error {
		var err error
		c, err = d.open(ctx, d.pipe)
		return err
	}, retry)
	if err != nil {
		return nil, fmt.Errorf(`rpcauth: open \pipe\%s: %w`, d.pipe, err)
	}
	return c, nil
}
