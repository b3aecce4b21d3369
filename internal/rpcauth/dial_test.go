package rpcauth

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	epm "github.com/oiweiwei/go-msrpc/msrpc/epm/epm/v3"
)

var errBusy = errors.New("pipe busy")

func TestRetryStopsOnSuccess(t *testing.T) {
	var n int
	err := Backoff{Initial: time.Microsecond}.Retry(context.Background(), func(context.Context) error {
		if n++; n < 4 {
			return errBusy
		}
		return nil
	}, nil)
	if err != nil || n != 4 {
		t.Fatalf("err=%v after %d calls, want nil after 4", err, n)
	}
}

func TestRetryStopsOnPermanentError(t *testing.T) {
	perm := errors.New("access denied")
	var n int
	err := Backoff{}.Retry(context.Background(), func(context.Context) error {
		n++
		return perm
	}, func(err error) bool { return errors.Is(err, errBusy) })
	if !errors.Is(err, perm) || n != 1 {
		t.Fatalf("err=%v after %d calls, want access denied after 1", err, n)
	}
}

func TestRetryHonoursDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	var n atomic.Int32
	err := Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond}.Retry(ctx, func(context.Context) error {
		n.Add(1)
		return errBusy
	}, nil)
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, errBusy) {
		t.Fatalf("err = %v, want deadline and the last error", err)
	}
	if el := time.Since(start); el > time.Second {
		t.Fatalf("returned after %v", el)
	}
	// Back-off, not a spin: 50 ms at <=5 ms steps is at most a few dozen calls.
	if c := n.Load(); c < 3 || c > 40 {
		t.Fatalf("%d attempts in 50 ms", c)
	}
}

// TestDialPipeBindsOverTheOpenedPipe runs a go-msrpc client bind through
// DialPipe: the opener is asked for the right pipe (after two "busy"
// answers), and the first bytes on it are a DCE/RPC bind PDU.
func TestDialPipeBindsOverTheOpenedPipe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	client, server := net.Pipe()
	defer server.Close()
	var asked []string
	open := func(_ context.Context, pipe string) (net.Conn, error) {
		asked = append(asked, pipe)
		if len(asked) < 3 {
			return nil, errBusy
		}
		return client, nil
	}
	conn, err := DialPipe(ctx, open, `\PIPE\epmapper`, Backoff{Initial: time.Millisecond},
		func(err error) bool { return errors.Is(err, errBusy) })
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	got := make(chan []byte, 1)
	go func() {
		hdr := make([]byte, 16)
		if _, err := io.ReadFull(server, hdr); err != nil {
			got <- nil
			return
		}
		got <- hdr
		server.Close() // refuse the bind: the client must fail, not hang
	}()
	_, err = epm.NewEpmClient(ctx, conn, dcerpc.WithInsecure())
	if err == nil {
		t.Fatal("bind succeeded against a closed pipe")
	}
	hdr := <-got
	if hdr == nil {
		t.Fatal("nothing was written to the pipe")
	}
	if hdr[0] != 5 || hdr[2] != 11 {
		t.Fatalf("first PDU: version %d type %d, want 5 and 11 (bind)", hdr[0], hdr[2])
	}
	if strings.Join(asked, ",") != "epmapper,epmapper,epmapper" {
		t.Fatalf("opener asked for %q", asked)
	}
}

func TestDialPipeRejectsBadNames(t *testing.T) {
	open := func(context.Context, string) (net.Conn, error) { return nil, errBusy }
	for _, name := range []string{"", `\pipe\`, "a/b", "x]y"} {
		if _, err := DialPipe(context.Background(), open, name, Backoff{}, nil); err == nil {
			t.Errorf("DialPipe(%q) succeeded", name)
		}
	}
	if _, err := DialPipe(context.Background(), nil, "svcctl", Backoff{}, nil); err == nil {
		t.Error("DialPipe with nil opener succeeded")
	}
}

type fakeCreds struct {
	account, password string
	hash              []byte
}

func (f fakeCreds) Account() string          { return f.account }
func (f fakeCreds) Password() (string, bool) { return f.password, f.password != "" }
func (f fakeCreds) NTHash() []byte           { return f.hash }

func TestOptions(t *testing.T) {
	if _, err := Options(fakeCreds{account: `WG\bob`}, Privacy); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no secret: err = %v", err)
	}
	if _, err := Options(nil, Privacy); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("nil creds: err = %v", err)
	}
	if _, err := Options(fakeCreds{account: `WG\`, password: "x"}, Privacy); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no user: err = %v", err)
	}
	for _, lvl := range []Level{Privacy, Integrity} {
		opts, err := Options(fakeCreds{account: `.\bob`, password: "pw"}, lvl)
		if err != nil || len(opts) != 3 {
			t.Errorf("%v: %d options, %v", lvl, len(opts), err)
		}
	}
	if opts, err := Options(nil, None); err != nil || len(opts) != 1 {
		t.Errorf("None: %d options, %v", len(opts), err)
	}
	if _, err := Options(fakeCreds{account: "bob", password: "pw"}, Level(9)); err == nil {
		t.Error("unknown level accepted")
	}
}

func TestNTLMCredentialForms(t *testing.T) {
	cases := []struct {
		in           fakeCreds
		user, domain string
		local        bool
	}{
		{fakeCreds{account: `CORP\alice`, password: "p"}, "alice", "CORP", false},
		{fakeCreds{account: `.\admin`, password: "p"}, "admin", "", true},
		{fakeCreds{account: `bob`, hash: make([]byte, 16)}, "bob", "", false},
	}
	for _, tc := range cases {
		m, c, err := ntlmSecurity(tc.in, "SRV")
		if err != nil {
			t.Fatal(err)
		}
		if c.UserName() != tc.user || c.DomainName() != tc.domain || m.Local != tc.local || m.Expect != "SRV" {
			t.Errorf("%s: got %q %q, local %v, expect %q", tc.in.account, c.DomainName(), c.UserName(), m.Local, m.Expect)
		}
	}
}
