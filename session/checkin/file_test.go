package checkin

import (
	"context"
	"errors"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func testTicket() Ticket {
	return Ticket{Addr: "192.0.2.7:4443", Fingerprint: strings.Repeat("0f", 32), Token: "tok-" + strings.Repeat("x", 40), Expires: time.Now().Add(time.Minute).Round(0)}
}

// A ticket file carries the whole ticket; reading it removes it.
func TestTicketFileRoundTrip(t *testing.T) {
	tk := testTicket()
	path := filepath.Join(t.TempDir(), "s1.ticket")
	if err := os.WriteFile(path, tk.FileContent(), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadTicketFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Addr != tk.Addr || got.Fingerprint != tk.Fingerprint || got.Token != tk.Token || !got.Expires.Equal(tk.Expires) {
		t.Fatalf("read %+v (token %q), wrote %+v", got, got.Token, tk)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ticket file still there after reading: %v", err)
	}
	if _, err := ReadTicketFile(path); !errors.Is(err, ErrTicketFile) {
		t.Fatalf("second read = %v, want ErrTicketFile", err)
	}
}

func TestTicketFileErrors(t *testing.T) {
	dir := t.TempDir()
	expired := testTicket()
	expired.Expires = time.Now().Add(-time.Second)
	noToken := testTicket()
	noToken.Token = ""
	for _, c := range []struct {
		name    string
		content []byte
		want    error
	}{
		{"expired", expired.FileContent(), ErrExpired},
		{"no token", noToken.FileContent(), ErrBadTicket},
		{"garbage", []byte("-console x -token y"), ErrBadTicket},
		{"unknown version", []byte(`{"v":9,"console":"a:1","fingerprint":"` + strings.Repeat("0f", 32) + `","token":"t"}`), ErrTicketFile},
	} {
		path := filepath.Join(dir, c.name)
		if err := os.WriteFile(path, c.content, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := ReadTicketFile(path)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "tok-") {
			t.Errorf("%s: error shows the token: %v", c.name, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s: bad ticket file not removed", c.name)
		}
	}
	if _, err := ReadTicketFile(""); !errors.Is(err, ErrTicketFile) {
		t.Fatalf("empty name: %v", err)
	}
}

// A relative name is found next to the executable, not in the current
// directory; the flag reads it, and the old flags still work.
func TestTicketFileFlag(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	name := "flagtest-" + strings.ReplaceAll(t.Name(), "/", "_") + ".ticket"
	path := filepath.Join(filepath.Dir(exe), name)
	tk := testTicket()
	if err := os.WriteFile(path, tk.FileContent(), 0o600); err != nil {
		t.Skipf("executable's directory not writable: %v", err)
	}
	t.Cleanup(func() { os.Remove(path) })
	t.Chdir(t.TempDir())
	args := append([]string{"-heartbeat", "1s"}, FileArgs(name)...)
	fs := flag.NewFlagSet("applet", flag.ContinueOnError)
	hb := fs.Duration("heartbeat", 0, "")
	get := RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	got, err := get()
	if err != nil || got.Token != tk.Token || *hb != time.Second {
		t.Fatalf("ticket %v (token ok %v), %v", got, got.Token == tk.Token, err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("ticket file not removed")
	}
	// The old flags.
	if got, err := ParseArgs(tk.Args()); err != nil || got.Token != tk.Token {
		t.Fatalf("old flags: %v", err)
	}
	// Both at once is an error.
	if _, err := ParseArgs(append(tk.Args(), FileArgs(name)...)); !errors.Is(err, ErrBadTicket) {
		t.Fatalf("both: %v", err)
	}
}

// recorder collects a ticket's refusals.
type recorder struct {
	mu sync.Mutex
	rs []Refusal
}

func (r *recorder) add(x Refusal) { r.mu.Lock(); r.rs = append(r.rs, x); r.mu.Unlock() }
func (r *recorder) all() []Refusal {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Refusal(nil), r.rs...)
}

func dialFrom(ctx context.Context, ip string, tk Ticket) (*AppletConn, error) {
	return dial(ctx, tk, Hello{Name: "MALLORY"}, &net.TCPAddr{IP: net.ParseIP(ip)})
}

// With Peers set, the right token from another address is refused (and
// reported), and the ticket stays valid for the target itself; a wrong
// token from the target's address is reported to that ticket too.
func TestCheckinOnlyFromTheTarget(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, nil)
	var rec, other recorder
	p, err := s.ExpectWith("s1", "", ExpectOptions{Peers: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Refused: rec.add})
	if err != nil {
		t.Fatal(err)
	}
	// Another session's ticket, restricted to another target.
	q, err := s.ExpectWith("s2", "", ExpectOptions{Peers: []netip.Addr{netip.MustParseAddr("127.0.0.3")}, Refused: other.add})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := dialFrom(ctx, "127.0.0.2", p.Ticket()); !errors.Is(err, ErrRejected) {
		t.Fatalf("right token, wrong address: %v, want ErrRejected", err)
	}
	bad := p.Ticket()
	bad.Token = "not-the-token"
	if _, err := dialFrom(ctx, "127.0.0.1", bad); !errors.Is(err, ErrRejected) {
		t.Fatalf("wrong token: %v, want ErrRejected", err)
	}
	ac, err := dialFrom(ctx, "127.0.0.1", p.Ticket())
	if err != nil {
		t.Fatalf("the target itself: %v", err)
	}
	defer ac.Close()
	c, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rs := rec.all()
	if len(rs) != 2 || rs[0].Session != "s1" || rs[0].Peer.Addr().String() != "127.0.0.2" || rs[0].Reason != ReasonWrongPeer || rs[0].Name != "MALLORY" ||
		rs[1].Peer.Addr().String() != "127.0.0.1" || rs[1].Reason != ReasonWrongToken {
		t.Fatalf("refusals %+v", rs)
	}
	if o := other.all(); len(o) != 0 {
		t.Fatalf("refusals reported to an unrelated ticket: %+v", o)
	}
	if strings.Contains(rs[0].Reason+rs[1].Reason, p.Ticket().Token) {
		t.Fatal("token in a refusal")
	}
}

// A flood of refused attempts is reported at most MaxRefusals times.
func TestRefusalsBounded(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, nil)
	var rec recorder
	p, _ := s.ExpectWith("s1", "", ExpectOptions{Peers: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Refused: rec.add})
	defer p.Cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range MaxRefusals + 4 {
		if _, err := dialFrom(ctx, "127.0.0.2", p.Ticket()); !errors.Is(err, ErrRejected) {
			t.Fatal(err)
		}
	}
	if n := len(rec.all()); n != MaxRefusals {
		t.Fatalf("%d refusals reported, want %d", n, MaxRefusals)
	}
}

// An applet that is asked to stop says goodbye; one whose connection
// just drops does not.
func TestGoodbye(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, stop := range []bool{true, false} {
		p, _ := s.Expect("s", "")
		ac, err := Dial(ctx, p.Ticket(), Hello{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := p.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		run := make(chan error, 1)
		go func() { run <- ac.Run(ctx, time.Hour) }()
		if stop {
			if err := c.Stop(ctx); err != nil {
				t.Fatal(err)
			}
		} else {
			ac.Close()
			<-c.Done()
		}
		<-run
		if c.SaidGoodbye() != stop {
			t.Fatalf("stop %v: SaidGoodbye %v", stop, c.SaidGoodbye())
		}
		c.Close()
	}
}
