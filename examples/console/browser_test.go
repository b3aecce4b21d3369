package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var (
	updateScreenshot = flag.Bool("update-screenshot", false, "write docs/console.png from the browser test")
	screenshotDir    = flag.String("screenshots", "", "keep the browser tests' screenshots in `DIR` (default: each test's temporary directory)")
)

// chromiumPath returns Debian's chromium binary, or skips the test (fails
// it under CI=true or LANCONNECT_LAB=require) when it is not installed.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/lib/chromium/chromium", "chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "chromium is not installed (apt-get install -y chromium): browser test skipped"
	if os.Getenv("CI") == "true" || os.Getenv("LANCONNECT_LAB") == "require" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// browser is a headless chromium tab and the test's helpers around it.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string
	step  int
}

// newBrowser starts chromium: headless, a fresh profile, nothing in the
// background, no name resolution, and any request that is not to loopback
// sent to a dead proxy. It stops with ctx or at the end of the test.
func newBrowser(ctx context.Context, t *testing.T, chromium string) *browser {
	t.Helper()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.ProxyServer("http://127.0.0.1:9"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 720),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	shots := *screenshotDir
	if shots == "" {
		shots = t.TempDir()
	} else {
		shots = filepath.Join(shots, t.Name())
		if err := os.MkdirAll(shots, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &browser{t: t, ctx: bctx, shots: shots}
}

// shot saves a screenshot of the page as N-name.png and returns it.
func (b *browser) shot(name string) []byte {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	b.step++
	p := filepath.Join(b.shots, fmt.Sprintf("%d-%s.png", b.step, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
	return png
}

func (b *browser) fail(what string, err error) {
	b.t.Helper()
	if err != nil {
		b.shot("failed")
		b.t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.fail(what, chromedp.Do(b.ctx, steps...))
}

// poll waits until the JavaScript expression is true.
func (b *browser) poll(what, expr string, timeout time.Duration) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout)))
	b.fail(what, err)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	b.fail("text of "+sel, err)
	return s
}

func (b *browser) eval(expr string) any {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[any](expr))
	b.fail("evaluate "+expr, err)
	return v
}

func (b *browser) rowNames() []string {
	b.t.Helper()
	names, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#hosts tr td.name")].map(td => td.textContent)`))
	b.fail("row names", err)
	return names
}

// TestBrowser drives the page on the handler tests' console (fake
// discovery and connect, no lab): the scan indicator while the scan runs,
// text that looks like HTML shown as text, a bad filter, a cancelled
// dialog, then Running and Closed, and a rescan.
func TestBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	tc := newTestConsole(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newBrowser(ctx, t, chromium)

	b.do("open", chromedp.Navigate(tc.url), chromedp.WaitVisible(chromedp.CSS(`#filter`)))
	// The launch URL's secret became a cookie and left the address bar.
	if b.eval(`location.search`) != "" {
		t.Fatalf("the secret stays in the address bar: %v", b.eval(`location.href`))
	}
	b.poll("two rows while scanning", `document.querySelectorAll("#hosts tr").length === 2`, 20*time.Second)
	if b.eval(`document.getElementById("scanning").hidden`) != false {
		t.Fatal("no scanning indicator while the scan runs")
	}
	if got := strings.Join(b.rowNames(), ","); got != "HERON-SRV,PC-01" {
		t.Fatalf("rows %s", got)
	}
	b.shot("scanning")
	close(tc.release)
	b.poll("three rows and the scan over", `document.querySelectorAll("#hosts tr").length === 3 && document.getElementById("scanning").hidden`, 20*time.Second)
	if c := b.text(`#count`); c != "3 computers" {
		t.Fatalf("count %q", c)
	}

	// Text from the network is text, never markup.
	if b.eval(`document.querySelectorAll("#hosts img, #hosts b").length`) != float64(0) || b.eval(`window.pwned === undefined`) != true {
		t.Fatal("host data was inserted as HTML")
	}
	if os := b.eval(`[...document.querySelectorAll("#hosts tr")].find(r => r.dataset.name === "PC-01").children[3].textContent`); os != hostileOS {
		t.Fatalf("OS cell %q", os)
	}

	// A bad filter is reported and leaves the list; a good one narrows it.
	b.do("bad filter", chromedp.SendKeys(chromedp.CSS(`#filter`), "10.0.0"))
	// Keys arrive one by one and each may be filtered; wait for the error
	// about the whole text, not about a prefix such as "10.0".
	b.poll("filter error", `!document.getElementById("filter-error").hidden && document.getElementById("filter-error").textContent.includes("10.0.0")`, 10*time.Second)
	if e := b.text(`#filter-error`); !strings.Contains(e, "10.0.0") {
		t.Fatalf("filter error %q", e)
	}
	b.eval(`document.getElementById("filter").value = ""`)
	b.do("good filter", chromedp.SendKeys(chromedp.CSS(`#filter`), "pc-0*"))
	b.poll("two PCs", `document.querySelectorAll("#hosts tr").length === 2 && document.getElementById("filter-error").hidden`, 10*time.Second)
	if got := strings.Join(b.rowNames(), ","); got != "PC-01,PC-02" {
		t.Fatalf("rows %s", got)
	}

	// Connect, then Cancel in the dialog: the session fails, cancelled.
	b.do("connect", chromedp.Click(chromedp.CSS(`#hosts tr button.connect`)), chromedp.WaitVisible(chromedp.CSS(`#prompt-account`)))
	if r := b.text(`#prompt-reason`); !strings.Contains(r, "not administrator on HERON-SRV") {
		t.Fatalf("dialog reason %q", r)
	}
	b.do("cancel", chromedp.Click(chromedp.CSS(`#prompt-cancel`)), chromedp.WaitNotVisible(chromedp.CSS(`#prompt-account`)))
	b.poll("Failed", `!!document.querySelector('#sessions li[data-state="Failed"]')`, 10*time.Second)
	if d := b.text(`#sessions li[data-state="Failed"] .diagnosis`); d == "" {
		t.Fatal("no diagnosis on the failed session")
	}
	b.shot("cancelled")

	// Connect again with the right account: Running, then Closed.
	b.do("connect again", chromedp.Click(chromedp.CSS(`#hosts tr button.connect`)), chromedp.WaitVisible(chromedp.CSS(`#prompt-account`)),
		chromedp.SendKeys(chromedp.CSS(`#prompt-account`), adminAccount),
		chromedp.SendKeys(chromedp.CSS(`#prompt-password`), adminPassword),
		chromedp.Click(chromedp.CSS(`#prompt-ok`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#prompt-account`)))
	b.poll("Running", `!!document.querySelector('#sessions li[data-state="Running"]')`, 10*time.Second)
	b.shot("running")
	b.do("close", chromedp.Click(chromedp.CSS(`#sessions li[data-state="Running"] button.close`)))
	b.poll("Closed", `!!document.querySelector('#sessions li[data-state="Closed"]')`, 10*time.Second)
	if n := b.eval(`document.querySelectorAll("#sessions li").length`); n != float64(2) {
		t.Fatalf("%v sessions listed, want 2", n)
	}
	b.shot("closed")

	// Rescan: the list is rebuilt from a second run of the discovery,
	// under the page's filter.
	b.eval(`document.querySelectorAll("#hosts tr").forEach(r => r.dataset.old = "1")`)
	b.do("rescan", chromedp.Click(chromedp.CSS(`#rescan`)))
	b.poll("the list rebuilt", `document.querySelectorAll("#hosts tr").length === 2 && !document.querySelector("#hosts tr[data-old]") && document.getElementById("scanning").hidden`, 20*time.Second)
	if got := strings.Join(b.rowNames(), ","); got != "PC-01,PC-02" {
		t.Fatalf("rows after the rescan %s", got)
	}
	if n := tc.scans.Load(); n != 2 {
		t.Fatalf("the discoverer ran %d times, want 2 (the scan and one rescan)", n)
	}
}
