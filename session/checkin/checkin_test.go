package checkin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"testing"
	"time"
)

func startServer(t *testing.T, s *Server) *Server {
	t.Helper()
	if s == nil {
		s = &Server{}
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCheckInStopHeartbeat(t *testing.T) {
	checkLeaks(t)
	var logs bytes.Buffer
	s := startServer(t, &Server{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	p, err := s.Expect("sess-1", "")
	if err != nil {
		t.Fatal(err)
	}
	tk := p.Ticket()
	parsed, err := ParseArgs(tk.Args())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ac, err := Dial(ctx, parsed, Hello{Name: "HERON", PID: 42})
	if err != nil {
		t.Fatal(err)
	}
	if ac.Session() != "sess-1" {
		t.Fatalf("session = %q", ac.Session())
	}
	c, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Hello.Name != "HERON" || c.Hello.PID != 42 || c.Hello.Token != "" || c.Session != "sess-1" {
		t.Fatalf("conn = %+v", c.Hello)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- ac.Run(ctx, 10*time.Millisecond) }()
	before := c.LastHeartbeat()
	for c.LastHeartbeat().Equal(before) { // heartbeats arrive
		select {
		case <-ctx.Done():
			t.Fatal("no heartbeat")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-runDone; err != nil {
		t.Fatalf("Run after stop = %v, want nil", err)
	}
	<-c.Done()
	if strings.Contains(logs.String(), tk.Token) {
		t.Fatal("token logged")
	}
}

func TestTokenIsOneTime(t *testing.T) {
	checkLeaks(t)
	var logs bytes.Buffer
	s := startServer(t, &Server{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	p, _ := s.Expect("s", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a1, err := Dial(ctx, p.Ticket(), Hello{})
	if err != nil {
		t.Fatal(err)
	}
	defer a1.Close()
	c, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := Dial(ctx, p.Ticket(), Hello{}); !errors.Is(err, ErrRejected) {
		t.Fatalf("reuse: %v, want ErrRejected", err)
	}
	bad := p.Ticket()
	bad.Token = strings.Repeat("A", len(bad.Token))
	if _, err := Dial(ctx, bad, Hello{}); !errors.Is(err, ErrRejected) {
		t.Fatalf("wrong token: %v, want ErrRejected", err)
	}
	if strings.Contains(logs.String(), p.Ticket().Token) || strings.Contains(logs.String(), bad.Token) {
		t.Fatal("token logged")
	}
	if !strings.Contains(logs.String(), "check-in refused") {
		t.Fatalf("refusal not logged: %s", logs.String())
	}
}

func TestExpiredToken(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, &Server{TokenTTL: 20 * time.Millisecond})
	p, _ := s.Expect("s", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, ErrExpired) {
		t.Fatalf("Wait = %v, want ErrExpired", err)
	}
	if _, err := Dial(ctx, p.Ticket(), Hello{}); !errors.Is(err, ErrRejected) {
		t.Fatalf("expired token: %v, want ErrRejected", err)
	}
}

func TestFingerprintPinned(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, nil)
	p, _ := s.Expect("s", "")
	tk := p.Ticket()
	tk.Fingerprint = strings.Repeat("ab", 32)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := Dial(ctx, tk, Hello{}); !errors.Is(err, ErrFingerprint) {
		t.Fatalf("Dial = %v, want ErrFingerprint", err)
	}
	p.Cancel()
	if _, err := p.Wait(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Cancel = %v", err)
	}
}

func TestDropEndsRunAndConn(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, nil)
	p, _ := s.Expect("s", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ac, err := Dial(ctx, p.Ticket(), Hello{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	go func() { runDone <- ac.Run(ctx, time.Hour) }()
	c.Close() // console goes away
	if err := <-runDone; !errors.Is(err, ErrClosed) {
		t.Fatalf("Run = %v, want ErrClosed", err)
	}
	// and the other way round: the applet drops, the console sees Done.
	p2, _ := s.Expect("s2", "")
	ac2, err := Dial(ctx, p2.Ticket(), Hello{})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := p2.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ac2.Close()
	select {
	case <-c2.Done():
	case <-ctx.Done():
		t.Fatal("console did not see the drop")
	}
	if c2.Err() == nil {
		t.Fatal("Err() = nil after drop")
	}
}

func TestServerCloseReleasesEverything(t *testing.T) {
	checkLeaks(t)
	s := &Server{}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	p, _ := s.Expect("a", "")
	p2, _ := s.Expect("b", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ac, err := Dial(ctx, p2.Ticket(), Hello{})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	c, err := p2.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := p.Wait(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Wait after Close = %v", err)
	}
	<-c.Done()
	if _, err := s.Expect("c", ""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Expect after Close = %v", err)
	}
}

func TestTicketRedactsAndValidates(t *testing.T) {
	tk := Ticket{Addr: "10.0.0.1:5000", Fingerprint: strings.Repeat("0f", 32), Token: "very-secret-token"}
	for _, s := range []string{fmt.Sprint(tk), fmt.Sprintf("%+v", tk), fmt.Sprintf("%#v", tk), fmt.Sprintf("%s", tk)} {
		if strings.Contains(s, "very-secret-token") {
			t.Fatalf("token printed: %s", s)
		}
	}
	for _, bad := range [][]string{
		{},
		{"-console", "x:1", "-token", "t"},
		{"-console", "x:1", "-token", "t", "-console-fingerprint", "zz"},
		{"-console", "x:1", "-token", "t", "-console-fingerprint", strings.Repeat("0f", 32), "extra"},
		{"-nope"},
	} {
		if _, err := ParseArgs(bad); !errors.Is(err, ErrBadTicket) {
			t.Errorf("ParseArgs(%q) = %v, want ErrBadTicket", bad, err)
		}
	}
}

func TestGarbageHello(t *testing.T) {
	checkLeaks(t)
	s := startServer(t, &Server{HandshakeTimeout: 200 * time.Millisecond})
	p, _ := s.Expect("s", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := tlsDialer(p.Ticket().Fingerprint).DialContext(ctx, "tcp", p.Ticket().Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.Write([]byte("{not json\n"))
	buf := make([]byte, 256)
	n, _ := nc.Read(buf)
	if !strings.Contains(string(buf[:n]), `"ok":false`) {
		t.Fatalf("reply = %q", buf[:n])
	}
	// the ticket is still valid for the real applet
	ac, err := Dial(ctx, p.Ticket(), Hello{})
	if err != nil {
		t.Fatal(err)
	}
	ac.Close()
}

// checkLeaks fails the test if goroutines started during it are still
// running after its other cleanups (polling until they settle). Call it
// first, so that its cleanup runs last.
func checkLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutine leak: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
