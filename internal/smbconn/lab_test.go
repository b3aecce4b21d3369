package smbconn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oiweiwei/go-msrpc/dcerpc"
	winreg "github.com/oiweiwei/go-msrpc/msrpc/rrp/winreg/v1"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

func labAuth(a testlab.Account) Auth { return Auth{User: a.User, Password: a.Password} }

func byVariant(t *testing.T, lab *testlab.Lab, v testlab.Variant) *testlab.Target {
	t.Helper()
	for _, tg := range lab.Targets {
		if tg.Variant == v && !tg.NoSMB {
			return tg
		}
	}
	t.Fatalf("no %v target in lab", v)
	return nil
}

// freeLabAddr returns an address of the lab's /24 that no namespace holds.
func freeLabAddr(lab *testlab.Lab) netip.Addr {
	used := map[netip.Addr]bool{lab.HostAddr: true}
	for _, tg := range lab.Targets {
		used[tg.Addr] = true
	}
	if lab.Client != nil {
		used[lab.Client.Addr] = true
	}
	a := lab.Prefix.Addr().Next()
	for i := 0; i < 250; i++ {
		a = a.Next()
	}
	for used[a] {
		a = a.Prev()
	}
	return a
}

// TestLab runs every smbconn behaviour against real Samba targets.
func TestLab(t *testing.T) {
	lab := testlab.New(t, testlab.Options{Targets: []testlab.TargetSpec{
		{}, {Variant: testlab.SigningMandatory}, {Variant: testlab.EncryptRequired},
		{Variant: testlab.GuestOnly}, {Variant: testlab.NTLMDisabled}, {NoSMB: true}, {Variant: testlab.MaxSMB300},
	}})
	std := byVariant(t, lab, testlab.Standard)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("standard", func(t *testing.T) {
		s, err := Dial(ctx, std.Addr.String(), labAuth(std.Admin), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		in := s.Info()
		if in.Dialect != 0x0311 || !in.Signed || in.Guest() || in.Encrypted {
			t.Fatalf("info: %+v", in)
		}
		if !in.HasChallenge || !strings.EqualFold(in.Challenge.NetBIOSComputer, std.NetBIOSName) {
			t.Fatalf("challenge: %+v (want computer %s)", in.Challenge, std.NetBIOSName)
		}
		t.Logf("challenge: %+v version %v", in.Challenge, in.Challenge.Version)
		sh, err := s.Mount(ctx, "ADMIN$")
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("smbconn-%d.txt", time.Now().UnixNano())
		if err := sh.WithContext(ctx).WriteFile(name, []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(std.AdminDir, name))
		if err != nil || string(got) != "hello" {
			t.Fatalf("server file: %q %v", got, err)
		}
		if err := sh.WithContext(ctx).Remove(name); err != nil {
			t.Fatal(err)
		}
		_ = sh.WithContext(ctx).Umount()
		tr := s.Traffic()
		if tr.Signed == 0 || tr.Unsigned != 0 {
			t.Fatalf("traffic not signed: %+v", tr)
		}
	})

	t.Run("winreg over the shared session", func(t *testing.T) {
		s, err := Dial(ctx, std.Addr.String(), labAuth(std.Admin), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		before := s.Traffic().Frames
		// The placeholder endpoint is never dialled: PipeDialer opens
		// \pipe\winreg on s instead.
		cc, err := dcerpc.Dial(ctx, "ncacn_ip_tcp:"+std.Addr.String()+"[1]", dcerpc.WithDialer(PipeDialer{Session: s, Pipe: "winreg"}))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close(ctx)
		cli, err := winreg.NewWinregClient(ctx, cc, dcerpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cli.OpenLocalMachine(ctx, &winreg.OpenLocalMachineRequest{DesiredAccess: 0x02000000})
		if err != nil || resp.Return != 0 {
			t.Fatalf("OpenLocalMachine: %v, %+v", err, resp)
		}
		if _, err := cli.BaseRegCloseKey(ctx, &winreg.BaseRegCloseKeyRequest{Key: resp.Key}); err != nil {
			t.Fatal(err)
		}
		if s.Traffic().Frames <= before {
			t.Fatal("RPC did not go over the shared session")
		}
	})

	t.Run("pipe close interrupts read", func(t *testing.T) {
		s, err := Dial(ctx, std.Addr.String(), labAuth(std.Admin), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p, err := s.OpenPipe(ctx, `\pipe\winreg`)
		if err != nil {
			t.Fatal(err)
		}
		_ = p.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := p.Read(make([]byte, 16)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read with deadline: %v", err)
		}
		_ = p.SetReadDeadline(time.Time{})
		done := make(chan error, 1)
		go func() { _, err := p.Read(make([]byte, 16)); done <- err }()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err == nil || errors.Is(err, io.EOF) {
			t.Fatalf("read after close: %v", err)
		}
		if _, err := s.OpenPipe(ctx, "no-such-pipe"); !errors.Is(err, StatusObjectNameNotFound) || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("missing pipe: %v", err)
		}
		// The session still works after the pipe is gone.
		p2, err := s.OpenPipe(ctx, "svcctl")
		if err != nil {
			t.Fatal(err)
		}
		_ = p2.Close()
	})

	t.Run("ordinary user on ADMIN$", func(t *testing.T) {
		s, err := Dial(ctx, std.Addr.String(), labAuth(std.User), Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = s.Mount(ctx, "ADMIN$")
		if !errors.Is(err, os.ErrPermission) || !errors.Is(err, StatusAccessDenied) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("signing mandatory", func(t *testing.T) {
		tg := byVariant(t, lab, testlab.SigningMandatory)
		s, err := Dial(ctx, tg.Addr.String(), labAuth(tg.Admin), Options{AllowUnsigned: true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !s.Info().ServerRequiresSigning || !s.Info().Signed {
			t.Fatalf("%+v", s.Info())
		}
		sh, err := s.Mount(ctx, "ADMIN$")
		if err != nil {
			t.Fatal(err)
		}
		_ = sh.WithContext(ctx).Umount()
		if tr := s.Traffic(); tr.Signed == 0 || tr.Unsigned != 0 {
			t.Fatalf("traffic: %+v", tr)
		}
	})

	t.Run("encryption required by server", func(t *testing.T) {
		tg := byVariant(t, lab, testlab.EncryptRequired)
		s, err := Dial(ctx, tg.Addr.String(), labAuth(tg.Admin), Options{Encryption: EncryptRequired})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if !s.Info().Encrypted {
			t.Fatalf("%+v", s.Info())
		}
		sh, err := s.Mount(ctx, "ADMIN$")
		if err != nil {
			t.Fatal(err)
		}
		_ = sh.WithContext(ctx).Umount()
		if tr := s.Traffic(); tr.Encrypted == 0 || tr.Encrypted != tr.Frames {
			t.Fatalf("traffic: %+v", tr)
		}
	})

	t.Run("encryption requested", func(t *testing.T) {
		s, err := Dial(ctx, std.Addr.String(), labAuth(std.Admin), Options{Encryption: EncryptRequired})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sh, err := s.Mount(ctx, "IPC$")
		if err != nil {
			t.Fatal(err)
		}
		_ = sh.WithContext(ctx).Umount()
		if tr := s.Traffic(); !s.Info().Encrypted || tr.Encrypted == 0 || tr.Encrypted != tr.Frames {
			t.Fatalf("info %+v traffic %+v", s.Info(), tr)
		}
	})

	// Files written and read back over encrypted sessions: AES-GCM on
	// 3.1.1 and AES-CCM on 3.0. The watcher decrypts every frame in both
	// directions with its own keys (reads are checked, WRITE lengths
	// tracked), so a mistake in its key derivation fails these sessions.
	for _, c := range []struct {
		name    string
		v       testlab.Variant
		dialect Dialect
	}{{"encrypted file copy 3.1.1", testlab.Standard, 0x0311}, {"encrypted file copy 3.0", testlab.MaxSMB300, 0x0300}} {
		t.Run(c.name, func(t *testing.T) {
			tg := byVariant(t, lab, c.v)
			s, err := Dial(ctx, tg.Addr.String(), labAuth(tg.Admin), Options{Encryption: EncryptRequired})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if in := s.Info(); in.Dialect != c.dialect || !in.Encrypted {
				t.Fatalf("%+v", in)
			}
			sh, err := s.Mount(ctx, "ADMIN$")
			if err != nil {
				t.Fatal(err)
			}
			sh = sh.WithContext(ctx)
			defer sh.Umount()
			data := bytes.Repeat([]byte("lanconnect "), 200_000) // 2.2 MB: many READs and WRITEs
			if err := sh.WriteFile("h14-probe.bin", data, 0o644); err != nil {
				t.Fatal(err)
			}
			defer sh.Remove("h14-probe.bin")
			back, err := sh.ReadFile("h14-probe.bin")
			if err != nil || !bytes.Equal(back, data) {
				t.Fatalf("read back: %v (%d bytes)", err, len(back))
			}
			if tr := s.Traffic(); tr.Encrypted < 10 || tr.Encrypted != tr.Frames {
				t.Fatalf("traffic %+v", tr)
			}
		})
	}

	t.Run("validate negotiate 3.0", func(t *testing.T) {
		tg := byVariant(t, lab, testlab.MaxSMB300)
		for _, enc := range []Encryption{EncryptAuto, EncryptRequired} {
			s, err := Dial(ctx, tg.Addr.String(), labAuth(tg.Admin), Options{Encryption: enc})
			if err != nil {
				t.Fatal(err)
			}
			in := s.Info()
			s.Close()
			if in.Dialect != 0x0300 || !in.NegotiationValidated || in.Encrypted != (enc == EncryptRequired) {
				t.Fatalf("encryption %v: %+v", enc, in)
			}
		}
		// Below the minimum: refused before the SESSION_SETUP, so no
		// credentials left the client.
		_, err := Dial(ctx, tg.Addr.String(), labAuth(tg.Admin), Options{MinDialect: 0x0311})
		var se *Error
		if !errors.Is(err, ErrDowngrade) || !errors.As(err, &se) || se.Info.HasChallenge || se.Info.Dialect != 0x0300 {
			t.Fatalf("min dialect: %v", err)
		}
	})

	// A man in the middle on the lab's path, changing the NEGOTIATE
	// exchange: the session must be refused with ErrDowngrade.
	for _, c := range []struct {
		name    string
		v       testlab.Variant
		req     func([]byte) // changes the client's NEGOTIATE request
		resp    func([]byte) // changes the server's NEGOTIATE response
		enc     Encryption
		wantErr bool
	}{
		{name: "mitm strips 3.1.1", v: testlab.Standard, req: func(m []byte) {
			n := int(binary.LittleEndian.Uint16(m[64+2:]))
			for i := 0; i < n; i++ {
				if binary.LittleEndian.Uint16(m[64+36+2*i:]) == 0x0311 {
					binary.LittleEndian.PutUint16(m[64+36+2*i:], 0x0300)
				}
			}
		}, wantErr: true},
		{name: "mitm hides encryption capability", v: testlab.MaxSMB300, resp: func(m []byte) {
			binary.LittleEndian.PutUint32(m[64+24:], binary.LittleEndian.Uint32(m[64+24:])&^capEncryption)
		}, wantErr: true},
		{name: "mitm changes server guid", v: testlab.MaxSMB300, enc: EncryptRequired, resp: func(m []byte) { m[64+8] ^= 1 }, wantErr: true},
		{name: "proxy without changes", v: testlab.MaxSMB300},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg := byVariant(t, lab, c.v)
			port := negotiateProxy(t, tg.Addr.String()+":445", c.req, c.resp)
			s, err := Dial(ctx, "127.0.0.1", labAuth(tg.Admin), Options{Port: port, Encryption: c.enc})
			if !c.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				s.Close()
				return
			}
			if err == nil {
				in := s.Info()
				s.Close()
				t.Fatalf("a changed negotiation was accepted: %+v", in)
			}
			if !errors.Is(err, ErrDowngrade) {
				t.Fatalf("err = %v, want ErrDowngrade", err)
			}
			t.Log(err)
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		_, err := Dial(ctx, std.Addr.String(), Auth{User: std.Admin.User, Password: std.Admin.Password + "x"}, Options{})
		var e *Error
		if !errors.Is(err, StatusLogonFailure) || !errors.As(err, &e) || !e.Info.HasChallenge {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), std.Admin.Password) {
			t.Fatal("password in error")
		}
	})

	t.Run("guest only", func(t *testing.T) {
		tg := byVariant(t, lab, testlab.GuestOnly)
		_, err := Dial(ctx, tg.Addr.String(), labAuth(tg.Admin), Options{})
		var e *Error
		if !errors.Is(err, ErrGuest) || !errors.As(err, &e) || !e.Info.Guest() {
			t.Fatalf("err = %v", err)
		}
		s, err := Dial(ctx, tg.Addr.String(), labAuth(tg.Admin), Options{AllowGuest: true})
		if err != nil {
			t.Fatal(err)
		}
		if !s.Info().Guest() || s.Info().Signed {
			t.Fatalf("%+v", s.Info())
		}
		_ = s.Close()
	})

	t.Run("ntlm disabled", func(t *testing.T) {
		tg := byVariant(t, lab, testlab.NTLMDisabled)
		_, err := Dial(ctx, tg.Addr.String(), labAuth(tg.Admin), Options{})
		if !errors.Is(err, StatusNTLMBlocked) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("port closed", func(t *testing.T) {
		var tg *testlab.Target
		for _, x := range lab.Targets {
			if x.NoSMB {
				tg = x
			}
		}
		_, err := Dial(ctx, tg.Addr.String(), labAuth(tg.Admin), Options{})
		if !errors.Is(err, ErrRefused) {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("nothing at address", func(t *testing.T) {
		a := freeLabAddr(lab)
		start := time.Now()
		_, err := Dial(ctx, a.String(), labAuth(std.Admin), Options{DialTimeout: 1500 * time.Millisecond})
		if !errors.Is(err, ErrUnreachable) || errors.Is(err, ErrRefused) {
			t.Fatalf("%v: err = %v", a, err)
		}
		t.Logf("%v: %v after %v", a, err, time.Since(start))
	})

	t.Run("cancel", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		if _, err := Dial(cctx, std.Addr.String(), labAuth(std.Admin), Options{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}

// negotiateProxy relays one SMB connection at a time to target, passing
// the client's first frame (the NEGOTIATE request) through req and the
// server's first frame (the NEGOTIATE response) through resp.
func negotiateProxy(t *testing.T, target string, req, resp func([]byte)) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	relay := func(dst, src net.Conn, first func([]byte)) {
		defer dst.Close()
		defer src.Close()
		for i := 0; ; i++ {
			var hdr [4]byte
			if _, err := io.ReadFull(src, hdr[:]); err != nil {
				return
			}
			f := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(src, f); err != nil {
				return
			}
			if i == 0 && first != nil && len(f) >= 64+40 {
				first(f)
			}
			if _, err := dst.Write(append(hdr[:], f...)); err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			go relay(up, c, req)
			go relay(c, up, resp)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}
