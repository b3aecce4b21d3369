package testlab

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ldapsearch runs OpenLDAP's ldapsearch against the DC over LDAPS,
// verifying the server with the lab CA, with the password in a file
// (-y), and returns the number of entries found.
func ldapsearch(ctx context.Context, t *testing.T, dc *DC, url, base, filter string) (int, string, error) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(dc.Admin.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-E", "pr=500/noprompt", "-H", url, "-x",
		"-D", dc.Admin.User+"@"+dc.Realm, "-y", pw, "-b", base, filter, "dn")
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+dc.CAFile, "LDAPTLS_REQCERT=demand")
	out, err := cmd.CombinedOutput()
	return strings.Count(string(out), "\ndn: ") + boolInt(strings.HasPrefix(string(out), "dn: ")), string(out), err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestDC(t *testing.T) {
	const computers = 240
	lab := New(t, Options{DC: &DCSpec{Computers: computers}, Client: true})
	t.Log("\n" + lab.String())
	dc := lab.DC
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// LDAPS answers with a certificate from the lab CA, for its hostname
	// and for its address.
	for _, name := range []string{dc.Hostname, dc.Addr.String()} {
		c, err := tls.Dial("tcp", netip.AddrPortFrom(dc.Addr, 636).String(), &tls.Config{RootCAs: dc.CAPool, ServerName: name})
		if err != nil {
			t.Fatalf("LDAPS handshake as %s: %v", name, err)
		}
		st := c.ConnectionState()
		if st.PeerCertificates[0].SerialNumber.Sign() <= 0 {
			t.Errorf("server certificate serial %v is not positive", st.PeerCertificates[0].SerialNumber)
		}
		c.Close()
	}
	// ... and not with any other CA (the check can fail).
	_, err := tls.Dial("tcp", netip.AddrPortFrom(dc.Addr, 636).String(), &tls.Config{RootCAs: x509.NewCertPool(), ServerName: dc.Hostname})
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("LDAPS handshake with an empty pool: want a verification error, got %v", err)
	}

	url := "ldaps://" + dc.Addr.String()
	n, out, err := ldapsearch(ctx, t, dc, url, dc.ComputersOU, "(objectClass=computer)")
	if err != nil || n != computers || len(dc.Computers) != computers {
		t.Fatalf("computers under %s: %d (loaded %d, want %d): %v\n%.2000s", dc.ComputersOU, n, len(dc.Computers), computers, err, out)
	}
	disabled := 0
	for _, c := range dc.Computers {
		if !c.Enabled {
			disabled++
		}
	}
	n, out, err = ldapsearch(ctx, t, dc, url, dc.ComputersOU, "(&(objectClass=computer)(userAccountControl:1.2.840.113556.1.4.803:=2))")
	if err != nil || n != disabled || disabled == 0 {
		t.Fatalf("disabled computers: %d, want %d: %v\n%.2000s", n, disabled, err, out)
	}
	c := dc.Computers[len(dc.Computers)-1]
	n, out, err = ldapsearch(ctx, t, dc, url, dc.BaseDN, "(&(dNSHostName="+c.DNSName+")(operatingSystem="+c.OS+"))")
	if err != nil || n != 1 || !strings.Contains(out, c.DN) {
		t.Fatalf("computer %s by dNSHostName and OS: %d: %v\n%s", c.Name, n, err, out)
	}

	// Simple binds on plain LDAP are refused (strong auth required).
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(dc.Admin.Password), 0o600); err != nil {
		t.Fatal(err)
	}
	plain := exec.CommandContext(ctx, "ldapsearch", "-LLL", "-H", "ldap://"+dc.Addr.String(), "-x",
		"-D", dc.Admin.User+"@"+dc.Realm, "-y", pw, "-b", "", "-s", "base")
	if out, err := plain.CombinedOutput(); err == nil || !strings.Contains(string(out), "Strong(er) authentication required") {
		t.Fatalf("simple bind on 389: want strong auth required, got %v\n%s", err, out)
	}

	// The client namespace sees only the lab and resolves the DC's name
	// through the DC.
	cl := lab.Client
	out2, err := cl.Command(ctx, "ip", "-4", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out2)), "\n") {
		if !strings.Contains(l, " lo ") && !strings.Contains(l, cl.Addr.String()+"/24") {
			t.Errorf("client namespace has a non-lab address: %s", l)
		}
	}
	out2, err = cl.Command(ctx, "getent", "hosts", dc.Hostname).CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out2), dc.Addr.String()+" ") {
		t.Errorf("client resolves %s to %q (%v), want %s", dc.Hostname, out2, err, dc.Addr)
	}
	// Short names are searched in the realm, and records added to the
	// DC's DNS resolve there.
	extra := lab.Prefix.Addr().Next().Next().Next().Next().Next().Next().Next() // .7, unused
	if err := dc.AddHostRecord(ctx, "lcextra1", extra); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{strings.ToLower(DCNetBIOSName), "lcextra1"} {
		want := dc.Addr
		if name == "lcextra1" {
			want = extra
		}
		out2, err = cl.Command(ctx, "getent", "hosts", name).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out2), want.String()+" ") {
			t.Errorf("client resolves the short name %s to %q (%v), want %s", name, out2, err, want)
		}
	}
	n, out, err = ldapsearch(ctx, t, dc, "ldaps://"+dc.Addr.String(), dc.ComputersOU, "(objectClass=organizationalUnit)")
	if err != nil || n != len(computerOUs)+1 {
		t.Errorf("OUs: %d, want %d: %v\n%s", n, len(computerOUs)+1, err, out)
	}

	// A process started in a namespace is stopped by Close.
	p, err := cl.Start(ctx, "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	st := lab.state
	if err := lab.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !p.Exited() {
		t.Errorf("process %d still running after Close", p.Pid())
	}
	t.Logf("lab %s: %s", lab.ID, lab.Timings())
	assertGone(t, &st)
}

// TestConcurrentLabs starts two labs at once: they get different IDs,
// bridges and /24s, and both work.
func TestConcurrentLabs(t *testing.T) {
	if err := Available(); err != nil {
		New(t, Options{}) // skips or fails as New decides
	}
	type res struct {
		l   *Lab
		err error
	}
	ch := make(chan res, 2)
	for range 2 {
		go func() {
			l, err := Start(context.Background(), Options{Targets: []TargetSpec{{}, {NoNmbd: true}}})
			ch <- res{l, err}
		}()
	}
	var labs []*Lab
	for range 2 {
		r := <-ch
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		labs = append(labs, r.l)
		t.Cleanup(func() { _ = r.l.Close() })
	}
	if t.Failed() {
		return
	}
	a, b := labs[0], labs[1]
	if a.ID == b.ID || a.Bridge == b.Bridge || a.Prefix.Overlaps(b.Prefix) {
		t.Fatalf("labs collide: %s %s %v and %s %s %v", a.ID, a.Bridge, a.Prefix, b.ID, b.Bridge, b.Prefix)
	}
	for _, l := range labs {
		for _, tg := range l.Targets {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(tg.Addr, 445).String(), 2*time.Second)
			if err != nil {
				t.Errorf("lab %s target %s: %v", l.ID, tg.Addr, err)
				continue
			}
			c.Close()
		}
	}
	for _, l := range labs {
		st := l.state
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		t.Logf("lab %s (%v): %s", l.ID, l.Prefix, l.Timings())
		assertGone(t, &st)
	}
}

// TestStaleLabCleanup kills a process that owns a lab (SIGKILL: no
// cleanup runs) and checks that the next Start removes that lab.
func TestStaleLabCleanup(t *testing.T) {
	if os.Getenv("LANCONNECT_LAB_HELPER") == "1" {
		return
	}
	if err := Available(); err != nil {
		New(t, Options{})
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperOwner$", "-test.v")
	cmd.Env = append(os.Environ(), "LANCONNECT_LAB_HELPER=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var id string
	buf := make([]byte, 4096)
	var got strings.Builder
	deadline := time.Now().Add(2 * time.Minute)
	for id == "" && time.Now().Before(deadline) {
		n, err := stdout.Read(buf)
		got.Write(buf[:n])
		if i := strings.Index(got.String(), "LABID="); i >= 0 {
			rest := got.String()[i+6:]
			if j := strings.IndexByte(rest, '\n'); j >= 0 {
				id = rest[:j]
			}
		}
		if err != nil {
			break
		}
	}
	if id == "" {
		t.Fatalf("helper did not start a lab:\n%s", got.String())
	}
	labs, _ := Labs()
	var st *State
	for _, s := range labs {
		if s.ID == id {
			st = s
		}
	}
	if st == nil || !st.OwnerAlive() || len(st.Netns) == 0 || !nsExists(st.Netns[0]) {
		t.Fatalf("helper lab %s not recorded as running: %+v", id, st)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// Its daemons outlive it, unless a lab that another test package
	// started meanwhile has already cleaned it up (also a pass).
	if pids := netnsPids(context.Background(), st.Netns[0]); len(pids) == 0 && nsExists(st.Netns[0]) {
		t.Fatalf("no processes left in %s after killing the owner; nothing to test", st.Netns[0])
	}
	l := New(t, Options{})
	_ = l
	assertGone(t, st)
}

// TestHelperOwner is the lab owner that TestStaleLabCleanup kills; it runs
// only as its child.
func TestHelperOwner(t *testing.T) {
	if os.Getenv("LANCONNECT_LAB_HELPER") != "1" {
		t.Skip("helper for TestStaleLabCleanup")
	}
	l, err := Start(context.Background(), Options{Targets: []TargetSpec{{}}})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("LABID=" + l.ID + "\n")
	time.Sleep(10 * time.Minute)
	t.Fatal("not killed: " + strconv.Itoa(os.Getpid()))
}
