package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
)

// TestLabLDAP runs lanscan with -ldap against the lab's AD DC, with a
// NetBIOS sweep of the DC's address only: every enabled computer is listed
// once with its directory facts, and the DC itself, which both sources
// see, is merged into one host with both sources.
func TestLabLDAP(t *testing.T) {
	l := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{Computers: 300}})
	dc := l.DC
	bin := filepath.Join(t.TempDir(), "lanscan")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	run := func(t *testing.T, stdin string, extra ...string) (map[string]hostJSON, string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		args := append([]string{"-json",
			"-ldap", "ldaps://" + dc.Addr.String(),
			"-ldap-server-name", dc.Hostname,
			"-ldap-ca", dc.CAFile,
			"-ldap-dns", dc.Addr.String(), // never the system resolver for lab names
			"-user", dc.Domain + `\` + dc.Admin.User,
			"-password-stdin",
		}, extra...)
		args = append(args, dc.Addr.String()) // the NetBIOS sweep: the DC only
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		// The last line about each host ID is its final state.
		byID := map[uint64]hostJSON{}
		sc := bufio.NewScanner(&stdout)
		for sc.Scan() {
			var h hostJSON
			if jerr := json.Unmarshal(sc.Bytes(), &h); jerr != nil {
				t.Fatalf("%q: %v", sc.Text(), jerr)
			}
			if h.Removed {
				delete(byID, h.ID)
				continue
			}
			byID[h.ID] = h
		}
		found := map[string]hostJSON{}
		for _, h := range byID {
			k := strings.ToUpper(h.Name)
			if _, dup := found[k]; dup {
				t.Errorf("%s listed under two IDs", k)
			}
			found[k] = h
		}
		return found, stderr.String(), err
	}

	t.Run("Merged", func(t *testing.T) {
		found, stderr, err := run(t, dc.Admin.Password+"\n")
		if err != nil {
			t.Fatalf("lanscan: %v\n%s", err, stderr)
		}
		if strings.Contains(stderr, dc.Admin.Password) {
			t.Fatal("stderr shows the password")
		}
		want := 1 // the DC
		for _, c := range dc.Computers {
			if !c.Enabled {
				if _, ok := found[strings.ToUpper(c.Name)]; ok {
					t.Errorf("disabled %s listed", c.Name)
				}
				continue
			}
			want++
			h, ok := found[strings.ToUpper(c.Name)]
			if !ok {
				t.Errorf("%s not listed", c.Name)
				continue
			}
			if !strings.EqualFold(h.DN, c.DN) || h.Enabled == nil || !*h.Enabled || h.OS != c.OS || !slices.Equal(h.Sources, []string{"ldap"}) {
				t.Errorf("%s listed as %+v", c.Name, h)
			}
		}
		if len(found) != want {
			t.Errorf("listed %d hosts, want %d", len(found), want)
		}
		dcName, _, _ := strings.Cut(dc.Hostname, ".")
		h, ok := found[strings.ToUpper(dcName)]
		if !ok {
			t.Fatalf("the DC %s is not listed", dcName)
		}
		t.Logf("DC: %+v", h)
		if !slices.Contains(h.Sources, "ldap") || !slices.Contains(h.Sources, "netbios") {
			t.Errorf("DC sources %v, want netbios and ldap merged", h.Sources)
		}
		if !slices.Contains(h.Addrs, dc.Addr.String()) || h.DN == "" || h.Enabled == nil || !*h.Enabled {
			t.Errorf("DC listed as %+v", h)
		}
		if !slices.Contains(h.Roles, "domain-controller") {
			t.Errorf("DC roles %v", h.Roles)
		}
	})

	// -ldap-bind kerberos: a SASL GSSAPI bind over LDAPS with a ticket for
	// ldap/DC (realm and KDC found through the DC's DNS) lists the same
	// computers. (BindKerberos binds with Kerberos or fails: it has no
	// fallback.)
	t.Run("Kerberos", func(t *testing.T) {
		found, stderr, err := run(t, dc.Admin.Password+"\n", "-ldap-bind", "kerberos")
		if err != nil {
			t.Fatalf("lanscan -ldap-bind kerberos: %v\n%s", err, stderr)
		}
		want := 1
		for _, c := range dc.Computers {
			if c.Enabled {
				want++
				if _, ok := found[strings.ToUpper(c.Name)]; !ok {
					t.Errorf("%s not listed", c.Name)
				}
			}
		}
		if len(found) != want || strings.Contains(stderr, dc.Admin.Password) {
			t.Fatalf("listed %d hosts, want %d, after a Kerberos bind:\n%s", len(found), want, stderr)
		}
	})

	// The closing summary with the DC's DNS (-ldap-dns dc: the host of
	// -ldap): the DC's own name resolves, the bulk-loaded computers have
	// no DNS records.
	t.Run("Summary", func(t *testing.T) {
		_, stderr, err := run(t, dc.Admin.Password+"\n", "-no-netbios", "-ldap-dns", "dc")
		if err != nil {
			t.Fatalf("lanscan: %v\n%s", err, stderr)
		}
		enabled := 1
		for _, c := range dc.Computers {
			if c.Enabled {
				enabled++
			}
		}
		want := fmt.Sprintf("lanscan: ldap: %d computers listed, %d of %d DNS names did not resolve\n", enabled, enabled-1, enabled)
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q, want the line %q", stderr, want)
		}
	})

	// A DNS server that never answers: every computer is listed at the
	// directory's pace, lanscan exits within about 2 s of the last one and
	// says that no name resolved.
	t.Run("SilentDNS", func(t *testing.T) {
		silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := silent.ReadFrom(buf); err != nil {
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-json", "-no-netbios",
			"-ldap", "ldaps://"+dc.Addr.String(), "-ldap-server-name", dc.Hostname, "-ldap-ca", dc.CAFile,
			"-ldap-dns", silent.LocalAddr().String(),
			"-user", dc.Domain+`\`+dc.Admin.User, "-password-stdin",
			"-no-smb", dc.Addr.String()) // a TARGET and -no-smb: nothing sweeps the local subnets
		cmd.Stdin = strings.NewReader(dc.Admin.Password + "\n")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := 0
		var last time.Time
		var addressed []string
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines++
			last = time.Now()
			if strings.Contains(sc.Text(), `"addrs":["`) {
				addressed = append(addressed, sc.Text())
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("lanscan: %v\n%s", err, stderr.String())
		}
		end := time.Now()
		t.Logf("%d lines in %v, exit %v after the last; stderr %q; with addresses: %q", lines, last.Sub(start), end.Sub(last), stderr.String(), addressed)
		enabled := 1
		for _, c := range dc.Computers {
			if c.Enabled {
				enabled++
			}
		}
		if lines != enabled {
			t.Errorf("%d NDJSON lines, want one per enabled computer (%d): no address resolved", lines, enabled)
		}
		// 2 s of lookups after the listing, and the process's exit.
		if d := end.Sub(last); d > 3500*time.Millisecond {
			t.Errorf("lanscan exited %v after the listing, want about 2 s", d)
		}
		want := fmt.Sprintf("lanscan: ldap: %d computers listed, %d of %d DNS names did not resolve\n", enabled, enabled, enabled)
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q, want the line %q", stderr.String(), want)
		}
	})

	t.Run("IncludeDisabled", func(t *testing.T) {
		found, stderr, err := run(t, dc.Admin.Password+"\n", "-ldap-include-disabled", "-ldap-base", dc.ComputersOU, "-no-netbios")
		if err != nil {
			t.Fatalf("lanscan: %v\n%s", err, stderr)
		}
		if len(found) != len(dc.Computers) {
			t.Errorf("listed %d hosts, want %d", len(found), len(dc.Computers))
		}
		for _, c := range dc.Computers {
			if h, ok := found[strings.ToUpper(c.Name)]; !ok || h.Enabled == nil || *h.Enabled != c.Enabled {
				t.Errorf("%s: listed %v as %+v", c.Name, ok, h)
			}
		}
	})

	t.Run("BadPassword", func(t *testing.T) {
		_, stderr, err := run(t, "wrong-"+dc.Admin.Password+"\n", "-no-netbios")
		if err == nil {
			t.Fatal("lanscan succeeded with a wrong password")
		}
		// auto binds with Kerberos here (-ldap-dns and a domain account):
		// the KDC refuses the pre-authentication.
		if !strings.Contains(stderr, "wrong password (pre-authentication failed)") || strings.Contains(stderr, dc.Admin.Password) {
			t.Errorf("stderr %q", stderr)
		}
	})
}
