package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/session/sessiontest"
)

// The vendor's discoverer and launcher in a session against fake
// computers: the inventory host is found, the audit entry is journaled,
// the applet runs, and the session's cleanup closes the entry and removes
// the files.
func TestPluginAgainstFakes(t *testing.T) {
	pc := &sessiontest.Computer{Name: "PC7", Addr: netip.MustParseAddr("127.0.2.37"),
		Accounts: map[string]sessiontest.Account{"admin": {Password: "pw", Admin: true}}}
	n := sessiontest.NewNetwork(pc)
	defer n.Close()
	inv := filepath.Join(t.TempDir(), "inventory.txt")
	if err := os.WriteFile(inv, []byte("# name address\npc6 127.0.2.36\npc7 127.0.2.37\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg session.Config
	n.Apply(&cfg)
	cfg.Credentials, _ = adauth.Parse(`PC7\admin`, "pw")
	trail := &auditTrail{}
	wire(&cfg, hostFile{inv}, trail)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, cfg, "pc7", &out); err != nil {
		t.Fatalf("run: %v\n%s", err, &out)
	}
	got := out.String()
	if !strings.Contains(got, "PC7: Running via "+sessiontest.LauncherName) || !strings.Contains(got, "PC7: undone "+kindAudit) {
		t.Fatalf("output:\n%s", got)
	}
	if len(trail.lines) != 2 || !strings.HasPrefix(trail.lines[0], "open ") || !strings.HasPrefix(trail.lines[1], "close ") || len(trail.open) != 0 {
		t.Fatalf("audit trail %q, open %v", trail.lines, trail.open)
	}
	if len(pc.Files()) != 0 || pc.Applets() != 0 {
		t.Fatalf("left on PC7: %v, %d applets", pc.Files(), pc.Applets())
	}
}

// A malformed inventory line is an error that names the file and line.
func TestHostFileBadLine(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "inv.txt")
	os.WriteFile(inv, []byte("pc1 127.0.2.1\npc2\n"), 0o600)
	ch := make(chan discovery.Host, 4)
	err := hostFile{inv}.Discover(context.Background(), ch)
	if err == nil || !strings.Contains(err.Error(), "inv.txt:2") || len(ch) != 1 {
		t.Fatalf("err %v, %d hosts sent", err, len(ch))
	}
}
