package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/selfcert"
	"github.com/lanconnect/lanconnect/internal/testutil"
)

// TestUsage checks the flag errors that run reports before it opens
// anything.
func TestUsage(t *testing.T) {
	cases := []struct {
		args []string
		msg  string
	}{
		{[]string{"-listen", "10.1.2.3:8080"}, "-allow-remote"},
		{[]string{"-listen", "0.0.0.0:8080"}, "-allow-remote"},
		{[]string{"-listen", ":8080", "-allow-remote"}, "-origin"},
		{[]string{"-listen", "nonsense"}, "-listen"},
		{[]string{"-filter", "10.0.0"}, "-filter"},
		{[]string{"-rate", "0"}, "-rate"},
		{[]string{"-no-netbios"}, "no discovery source"},
		{[]string{"-ldap-ca", "x.pem"}, "-ldap"},
		{[]string{"-ldap", "ldaps://dc", "-ldap-bind", "kerberos"}, "-ldap-bind"},
		{[]string{"-user", `a\b\c`}, "-user"},
		{[]string{"-no-such-flag"}, "no-such-flag"},
		{[]string{"-tls-cert", "c.pem"}, "-tls-key"},
		{[]string{"-ldap-domain", "corp.example", "-ldap-bind", "simple", "-user", `CORP\alice`}, "-ldap URL"},
		{[]string{"-listen", "10.1.2.3:8080", "-allow-remote", "-origin", "http://10.1.2.3:8080"}, "https://"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var out, errb strings.Builder
			code := run(context.Background(), c.args, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
				listening: func(string) { t.Fatal("the console started") }})
			if code != 2 || !strings.Contains(errb.String(), c.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errb.String(), c.msg)
			}
		})
	}
}

// startConsole runs the console with args until the test ends and returns
// its launch URL and its standard output so far.
func startConsole(t *testing.T, args ...string) (string, *testutil.LockedBuffer) {
	t.Helper()
	applet := filepath.Join(t.TempDir(), "applet.exe")
	if err := os.WriteFile(applet, []byte("MZ not used"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &testutil.LockedBuffer{}, &testutil.LockedBuffer{}
	urlc, exited := make(chan string, 1), make(chan int, 1)
	go func() {
		exited <- run(ctx, append([]string{"-applet", applet, "-console", "127.0.0.1:0", "-timeout", "200ms"}, append(args, "127.0.0.1")...),
			env{stdin: strings.NewReader(""), stdout: out, stderr: errb, getenv: func(string) string { return "" }, listening: func(u string) { urlc <- u }})
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("console exited with %d: %s", code, errb.String())
		}
	})
	select {
	case u := <-urlc:
		return u, out
	case code := <-exited:
		exited <- code
		t.Fatalf("console exited with %d: %s", code, errb.String())
	case <-time.After(20 * time.Second):
		t.Fatal("console did not start")
	}
	return "", nil
}

// pinnedClient trusts only the certificate with this SHA-256 fingerprint,
// as a technician who compared it would.
func pinnedClient(fp string) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // verified by fingerprint below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if got := selfcert.Fingerprint(cs.PeerCertificates[0].Raw); got != fp {
				return fmt.Errorf("fingerprint %s, want %s", got, fp)
			}
			return nil
		},
	}}
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: tr, Jar: jar}
}

var fpRe = regexp.MustCompile(`fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})`)

// TestLaunchURLAndHTTPS: the printed URL carries the secret; with
// -allow-remote the page is HTTPS, with the printed fingerprint and a
// Secure cookie; -tls-cert/-tls-key serve the given certificate.
func TestLaunchURLAndHTTPS(t *testing.T) {
	t.Run("loopback", func(t *testing.T) {
		u, out := startConsole(t, "-listen", "127.0.0.1:0")
		if !strings.HasPrefix(u, "http://127.0.0.1:") || !strings.Contains(out.String(), "open "+u) {
			t.Fatalf("URL %q, output %q", u, out.String())
		}
		base, key, _ := strings.Cut(u, "/?key=")
		if len(key) < 32 {
			t.Fatalf("secret %q too short", key)
		}
		resp, err := http.Get(base + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("without the secret: %d", resp.StatusCode)
		}
		signIn(t, u)
	})
	t.Run("self-signed", func(t *testing.T) {
		u, out := startConsole(t, "-listen", "127.0.0.1:0", "-allow-remote")
		m := fpRe.FindStringSubmatch(out.String())
		if !strings.HasPrefix(u, "https://127.0.0.1:") || m == nil {
			t.Fatalf("URL %q, output %q", u, out.String())
		}
		c := pinnedClient(m[1])
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Request.URL.RawQuery != "" {
			t.Fatalf("sign in: %d at %s", resp.StatusCode, resp.Request.URL)
		}
		if v := resp.Request.Response.Header.Get("Set-Cookie"); !strings.HasPrefix(v, "__Host-lanconnect-console=") || !strings.Contains(v, "Secure") {
			t.Fatalf("cookie %q", v)
		}
		if cs := resp.TLS.PeerCertificates[0]; cs.VerifyHostname("127.0.0.1") != nil {
			t.Fatalf("certificate SANs %v %v", cs.IPAddresses, cs.DNSNames)
		}
		if _, err := pinnedClient(strings.Repeat("00:", 31) + "00").Get(u); err == nil {
			t.Fatal("a client pinning another fingerprint connected")
		}
	})
	t.Run("given certificate", func(t *testing.T) {
		cert, err := selfcert.New("given", time.Hour, "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		kb, _ := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
		os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
		u, out := startConsole(t, "-listen", "127.0.0.1:0", "-tls-cert", certFile, "-tls-key", keyFile)
		if strings.Contains(out.String(), "fingerprint") {
			t.Fatalf("a fingerprint printed for a given certificate: %q", out.String())
		}
		resp, err := pinnedClient(selfcert.Fingerprint(cert.Certificate[0])).Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("sign in: %d", resp.StatusCode)
		}
	})
}

// TestAppletBuildHasNoPassword: the console's go build of the applet (a
// fake go tool that records its environment) does not see
// LANCONNECT_PASSWORD.
func TestAppletBuildHasNoPassword(t *testing.T) {
	dir := t.TempDir()
	envFile := filepath.Join(dir, "child.env")
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte("#!/bin/sh\nexec /usr/bin/env > "+envFile+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Setenv(passwordEnv, "Env-pw-5a7b")
	var out, errb strings.Builder
	run(context.Background(), []string{"-listen", "127.0.0.1:0", "-user", `.\admin`, "127.0.0.1"}, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: os.Getenv, listening: func(string) { t.Error("the console started without an applet") }})
	b, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatalf("the go tool did not run: %v; stderr %q", err, errb.String())
	}
	if strings.Contains(string(b), "Env-pw-5a7b") || strings.Contains(string(b), passwordEnv) {
		t.Fatalf("the go tool saw the password:\n%s", b)
	}
	if strings.Contains(errb.String(), "Env-pw-5a7b") {
		t.Fatal("the password is in the console's errors")
	}
}
