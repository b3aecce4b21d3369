package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/internal/testlab"
	"github.com/lanconnect/lanconnect/internal/testutil"
)

// TestLabDirectory runs the console with lanscan's directory flags against
// the lab's DC (and a NetBIOS sweep of the DC's address only), and reads
// the page's stream as a browser would: every enabled computer is listed
// once, the DC with both sources merged, and the scan then ends.
func TestLabDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	lab := testlab.New(t, testlab.Options{DC: &testlab.DCSpec{Computers: 300}})
	dc := lab.DC
	applet := filepath.Join(t.TempDir(), "applet.exe")
	if err := os.WriteFile(applet, []byte("MZ not used: this test does not connect"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	logs := &testutil.LockedBuffer{}
	urlc := make(chan string, 1)
	exited := make(chan int, 1)
	go func() {
		exited <- run(ctx, []string{
			"-listen", "127.0.0.1:0", "-applet", applet, "-console", "127.0.0.1:0",
			"-ldap", "ldaps://" + dc.Addr.String(), "-ldap-server-name", dc.Hostname, "-ldap-ca", dc.CAFile,
			"-ldap-dns", dc.Addr.String(), // never the system resolver for lab names
			"-user", dc.Domain + `\` + dc.Admin.User,
			dc.Addr.String(),
		}, env{stdin: strings.NewReader(""), stdout: logs, stderr: logs, listening: func(u string) { urlc <- u },
			getenv: func(k string) string {
				if k == passwordEnv {
					return dc.Admin.Password
				}
				return ""
			}})
	}()
	var url string
	select {
	case url = <-urlc:
	case code := <-exited:
		t.Fatalf("console exited with %d:\n%s", code, logs.String())
	}
	defer func() {
		cancel()
		if code := <-exited; code != 0 {
			t.Errorf("console exited with %d", code)
		}
		if strings.Contains(logs.String(), dc.Admin.Password) {
			t.Error("the password appears in the console's output")
		}
	}()
	c := signIn(t, url)
	base, _, _ := strings.Cut(url, "/?")
	s := openStream(t, c, base, openPage(t, c, base))

	want := map[string]bool{}
	for _, c := range dc.Computers {
		if c.Enabled {
			want[strings.ToUpper(c.Name)] = true
		}
	}
	dcName, _, _ := strings.Cut(dc.Hostname, ".")
	want[strings.ToUpper(dcName)] = true
	hosts := map[float64]map[string]any{}
	t0 := time.Now()
	for scanning := true; scanning; {
		ev := s.next(t, "hosts and the end of the scan", func(ev sseEvent) bool { return ev.name == "host" || ev.name == "hide" || ev.name == "scan" })
		if ev.name == "scan" {
			scanning = ev.data["scanning"] == true
			if errs, _ := ev.data["errors"].([]any); len(errs) > 0 {
				t.Fatalf("scan errors: %v", errs)
			}
			continue
		}
		if ev.name == "hide" { // merged into another host
			delete(hosts, ev.data["id"].(float64))
			continue
		}
		hosts[ev.data["id"].(float64)] = ev.data
	}
	t.Logf("%d hosts listed, scan over in %v", len(hosts), time.Since(t0).Round(time.Millisecond))
	seen := map[string]bool{}
	for _, h := range hosts {
		name := strings.ToUpper(h["name"].(string))
		if seen[name] {
			t.Errorf("%s listed twice", name)
		}
		seen[name] = true
		if !want[name] {
			t.Errorf("%s listed, not an enabled computer of the directory", name)
		}
		var sources []string
		for _, src := range h["sources"].([]any) {
			sources = append(sources, src.(string))
		}
		if name == strings.ToUpper(dcName) {
			if !slices.Contains(sources, "ldap") || !slices.Contains(sources, "netbios") {
				t.Errorf("DC sources %v, want ldap and netbios merged", sources)
			}
		} else if !slices.Equal(sources, []string{"ldap"}) || h["os"] == "" {
			t.Errorf("%s listed as %v", name, h)
		}
	}
	if len(seen) != len(want) {
		t.Errorf("listed %d hosts, want %d", len(seen), len(want))
	}
}
