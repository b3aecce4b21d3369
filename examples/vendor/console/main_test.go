package main

import (
	"bytes"
	"context"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/session/sessiontest"
)

// syncBuffer is a bytes.Buffer that tells when a pattern appears.
type syncBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	re   *regexp.Regexp
	seen chan struct{}
	once sync.Once
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	if w.re.Match(w.b.Bytes()) {
		w.once.Do(func() { close(w.seen) })
	}
	return n, err
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// The console connects to the host its filter shows, asks the prompt
// when the first account is not administrator, reaches Running, and on
// interrupt closes the session and leaves nothing on the computer.
func TestConsoleAgainstFakes(t *testing.T) {
	accounts := map[string]sessiontest.Account{"admin": {Password: "pw", Admin: true}, "user": {Password: "pw"}}
	pc1 := &sessiontest.Computer{Name: "PC1", Addr: netip.MustParseAddr("127.0.2.21"), Accounts: accounts}
	pc2 := &sessiontest.Computer{Name: "PC2", Addr: netip.MustParseAddr("127.0.2.22"), Accounts: accounts}
	n := sessiontest.NewNetwork(pc1, pc2)
	defer n.Close()
	var cfg session.Config
	n.Apply(&cfg)
	cfg.Credentials, _ = adauth.Parse(`PC1\user`, "pw")

	out := &syncBuffer{re: regexp.MustCompile(`PC1 +Running`), seen: make(chan struct{})}
	var prompts bytes.Buffer
	prompt := terminalPrompt(strings.NewReader("PC1\\admin\npw\n"), &prompts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, discovery.MustParseFilter("pc1"), out, prompt) }()
	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("run returned early: %v; output:\n%s", err, out)
	case <-time.After(time.Minute):
		t.Fatalf("no Running; output:\n%s", out)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v; output:\n%s", err, out)
	}
	got := out.String()
	if !regexp.MustCompile(`PC1 +Closed`).MatchString(got) || strings.Contains(got, "PC2") {
		t.Fatalf("want PC1 Running then Closed and no PC2; output:\n%s", got)
	}
	if !strings.Contains(prompts.String(), `PC1 (127.0.2.21) refused PC1\user`) {
		t.Fatalf("prompt text: %q", prompts.String())
	}
	if len(pc1.Files()) != 0 || pc1.Applets() != 0 || n.Logons() != 2 {
		t.Fatalf("left on PC1: files %v, applets %d; logons %d (want 2)", pc1.Files(), pc1.Applets(), n.Logons())
	}
}
