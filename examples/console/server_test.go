package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/internal/testutil"
	"github.com/lanconnect/lanconnect/session"
)

// The handler tests run the server on a real session.Client whose
// discovery, authentication, deployment and launch are fakes: the HTTP
// side, the stream and the prompt round trip are what is under test.

const (
	adminAccount  = "HERON\\admin"
	adminPassword = "Adm1n-pw-7c1f" // a marker searched for in every output
	userPassword  = "Us3r-pw-41d2"
)

// fakeAuth refuses every account but adminAccount as "not administrator".
type fakeAuth struct {
	mu    sync.Mutex
	tried []adauth.Credentials
}

func (a *fakeAuth) Authenticate(ctx context.Context, host string, c adauth.Credentials) (*adauth.Grant, error) {
	a.mu.Lock()
	a.tried = append(a.tried, c)
	a.mu.Unlock()
	if pw, _ := c.Password(); c.Account() == adminAccount && pw == adminPassword {
		return &adauth.Grant{Addr: host, Credentials: c}, nil
	}
	return nil, &adauth.AuthError{Addr: host, Account: c.Account(), Step: adauth.StepAdminShare, Kind: adauth.ErrNotAdmin, Retryable: true,
		Diagnosis: diag.Diagnosis{Code: "not-admin", Summary: c.Account() + " is not administrator on HERON-SRV.", Fix: "Use an administrator account."}}
}

type fakeDeployer struct{}

func (fakeDeployer) Deploy(ctx context.Context, t *deploy.Target, progress func(done, total int64)) (string, error) {
	progress(10, 10)
	return `C:\Windows\lcapplet.exe`, nil
}

type fakeHandle struct{ stopped chan struct{} }

func (h *fakeHandle) Running(context.Context) (bool, error) { return true, nil }
func (h *fakeHandle) PID() uint32                           { return 42 }
func (h *fakeHandle) Stop(context.Context) error {
	select {
	case <-h.stopped:
	default:
		close(h.stopped)
	}
	return nil
}

type fakeLauncher struct{ h *fakeHandle }

func (l fakeLauncher) Name() string { return "fake" }
func (l fakeLauncher) Launch(context.Context, *deploy.Target, deploy.LaunchSpec) (deploy.Handle, error) {
	return l.h, nil
}

// hostileOS is text a directory could hold that is also markup: the page
// must show it as text.
const hostileOS = `<img src=x onerror="window.pwned=1"><b>Windows</b>`

var labHosts = []discovery.Host{
	{Name: "HERON-SRV", Addrs: []netip.Addr{netip.MustParseAddr("10.9.0.5")}, Domain: "HERON", OS: "Windows Server 2022"},
	{Name: "PC-01", Addrs: []netip.Addr{netip.MustParseAddr("10.9.0.6")}, Domain: "HERON", OS: hostileOS},
	{Name: "PC-02", Addrs: []netip.Addr{netip.MustParseAddr("10.9.0.7")}, Domain: "HERON"},
}

type testConsole struct {
	ts     *httptest.Server
	srv    *server
	auth   *fakeAuth
	handle *fakeHandle
	log    *testutil.LockedBuffer
	// release lets the fake scan send its last host and finish.
	release chan struct{}
	// scans counts the fake discoverer's runs (a sweep, a directory bind).
	scans atomic.Int32
	// secret is the launch secret; url the launch URL; c a client
	// signed in with it (it holds the cookie).
	secret, url string
	c           *http.Client
}

// signIn visits a launch URL with a fresh cookie jar, as a browser does,
// and returns the client, which then carries the console's cookie.
func signIn(t *testing.T, launch string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Transport: http.DefaultTransport}
	resp, err := c.Get(launch)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.RawQuery != "" {
		t.Fatalf("sign in at %s: %d at %s: %s", launch, resp.StatusCode, resp.Request.URL, b)
	}
	return c
}

func newTestConsole(t *testing.T) *testConsole {
	t.Helper()
	tc := &testConsole{auth: &fakeAuth{}, handle: &fakeHandle{stopped: make(chan struct{})}, log: &testutil.LockedBuffer{}, release: make(chan struct{})}
	scan := discovery.Named("fake", discovery.DiscovererFunc(func(ctx context.Context, out chan<- discovery.Host) error {
		tc.scans.Add(1)
		for i, h := range labHosts {
			if i == len(labHosts)-1 {
				select {
				case <-tc.release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			h.Sources = []discovery.Source{discovery.SourceNetBIOS}
			select {
			case out <- h:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}))
	log := slog.New(slog.NewTextHandler(tc.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cr, err := adauth.Parse(".\\user", userPassword)
	if err != nil {
		t.Fatal(err)
	}
	tc.ts = httptest.NewUnstartedServer(nil)
	client, err := session.New(session.Config{
		Authenticator: tc.auth,
		Credentials:   cr,
		Deployer:      fakeDeployer{},
		Launchers:     []deploy.Launcher{fakeLauncher{tc.handle}},
		Readiness:     func(context.Context, *deploy.Target, deploy.Handle) error { return nil },
		Logger:        log,
		Discoverers:   []discovery.Discoverer{scan},
	})
	if err != nil {
		t.Fatal(err)
	}
	tc.secret = newSecret()
	origin := "http://" + tc.ts.Listener.Addr().String()
	srv, err := newServer(serverConfig{Client: client, Logger: log, Origin: origin, Secret: tc.secret, Sources: 1})
	if err != nil {
		t.Fatal(err)
	}
	tc.srv = srv
	tc.ts.Config.Handler = srv.handler()
	tc.ts.Start()
	tc.url = launchURL(origin, tc.secret)
	tc.c = signIn(t, tc.url)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.shutdown(ctx)
		tc.ts.Close()
		client.Close()
		if strings.Contains(tc.log.String(), adminPassword) || strings.Contains(tc.log.String(), userPassword) {
			t.Error("a password appears in the log")
		}
	})
	return tc
}

type testPage struct{ id, token string }

var metaRe = regexp.MustCompile(`<meta name="lc-(page|token)" content="([0-9a-f]+)">`)

func (tc *testConsole) open(t *testing.T) testPage { t.Helper(); return openPage(t, tc.c, tc.ts.URL) }

// openPage loads the page at base with c (signed in) and returns its ID
// and token.
func openPage(t *testing.T, c *http.Client, base string) testPage {
	t.Helper()
	resp, err := c.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /: %d %s", resp.StatusCode, b)
	}
	var p testPage
	for _, m := range metaRe.FindAllStringSubmatch(string(b), -1) {
		if m[1] == "page" {
			p.id = m[2]
		} else {
			p.token = m[2]
		}
	}
	if p.id == "" || len(p.token) != 64 {
		t.Fatalf("no page ID or token in the page:\n%s", b)
	}
	return p
}

type sseEvent struct {
	name string
	data map[string]any
	raw  string
}

// stream opens the page's event stream; its events arrive on the channel
// until stop is called or the server ends it.
type stream struct {
	events chan sseEvent
	stop   context.CancelFunc
	mu     sync.Mutex
	raw    strings.Builder
}

func (tc *testConsole) stream(t *testing.T, p testPage) *stream {
	t.Helper()
	return openStream(t, tc.c, tc.ts.URL, p)
}

// openStream opens the event stream of page p of the console at base,
// with c (signed in).
func openStream(t *testing.T, c *http.Client, base string, p testPage) *stream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/events?page="+p.id+"&token="+p.token, nil)
	resp, err := c.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{events: make(chan sseEvent, 1000), stop: cancel}
	t.Cleanup(cancel)
	go func() {
		defer close(s.events)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.raw.WriteString(line + "\n")
			s.mu.Unlock()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.raw = strings.TrimPrefix(line, "data: ")
				ev.data = map[string]any{}
				if err := json.Unmarshal([]byte(ev.raw), &ev.data); err != nil {
					ev.data = map[string]any{"bad-json": ev.raw}
				}
			case line == "" && ev.name != "":
				s.events <- ev
				ev = sseEvent{}
			}
		}
	}()
	return s
}

func (s *stream) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// next waits for the first event that satisfies match.
func (s *stream) next(t *testing.T, what string, match func(sseEvent) bool) sseEvent {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("stream ended while waiting for %s", what)
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func isEvent(name string, kv ...string) func(sseEvent) bool {
	return func(ev sseEvent) bool {
		if ev.name != name {
			return false
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if s, _ := ev.data[kv[i]].(string); s != kv[i+1] {
				return false
			}
		}
		return true
	}
}

type postOpt func(*http.Request)

func (tc *testConsole) post(t *testing.T, p testPage, path string, body string, opts ...postOpt) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", tc.ts.URL+path, strings.NewReader(body))
	req.Header.Set("Origin", tc.ts.URL)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Page-ID", p.id)
	req.Header.Set("X-CSRF-Token", p.token)
	for _, o := range opts {
		o(req)
	}
	resp, err := tc.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: response is not JSON: %q", path, b)
	}
	if strings.Contains(string(b), adminPassword) {
		t.Fatalf("%s: the password is echoed: %s", path, b)
	}
	return resp.StatusCode, m
}

func header(k, v string) postOpt { return func(r *http.Request) { r.Header.Set(k, v) } }
func noHeader(k string) postOpt  { return func(r *http.Request) { r.Header.Del(k) } }

func TestIndex(t *testing.T) {
	tc := newTestConsole(t)
	resp, err := tc.c.Get(tc.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Fatalf("CSP %q", csp)
	}
	a, b := tc.open(t), tc.open(t)
	if a.id == b.id || a.token == b.token {
		t.Fatal("two loads of the page share an ID or token")
	}
	for _, path := range []string{"/static/app.js", "/static/app.css"} {
		resp, err := tc.c.Get(tc.ts.URL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, err, resp.Status)
		}
		resp.Body.Close()
	}
	// DNS rebinding: another name for this address is refused.
	req, _ := http.NewRequest("GET", tc.ts.URL+"/", nil)
	req.Host = "evil.example:80"
	resp, err = tc.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Fatalf("foreign Host: %d", resp.StatusCode)
	}
}

func TestActionChecks(t *testing.T) {
	tc := newTestConsole(t)
	p, other := tc.open(t), tc.open(t)
	tc.stream(t, p)
	cases := []struct {
		name, path, body string
		opts             []postOpt
		code             int
		msg              string
	}{
		{"no Origin", "/api/filter", `{"filter":""}`, []postOpt{noHeader("Origin")}, 403, "cross-origin"},
		{"foreign Origin", "/api/filter", `{"filter":""}`, []postOpt{header("Origin", "http://evil.example")}, 403, "cross-origin"},
		{"null Origin", "/api/connect", `{"host":1}`, []postOpt{header("Origin", "null")}, 403, "cross-origin"},
		{"no token", "/api/filter", `{"filter":""}`, []postOpt{noHeader("X-CSRF-Token")}, 403, "CSRF"},
		{"wrong token", "/api/filter", `{"filter":""}`, []postOpt{header("X-CSRF-Token", strings.Repeat("0", 64))}, 403, "CSRF"},
		{"another page's token", "/api/filter", `{"filter":""}`, []postOpt{header("X-CSRF-Token", other.token)}, 403, "CSRF"},
		{"no page", "/api/close/x", `{}`, []postOpt{noHeader("X-Page-ID")}, 403, "CSRF"},
		{"form post", "/api/filter", `filter=x`, []postOpt{header("Content-Type", "application/x-www-form-urlencoded")}, 415, "application/json"},
		{"text/plain", "/api/connect", `{"host":1}`, []postOpt{header("Content-Type", "text/plain")}, 415, "application/json"},
		{"too large", "/api/filter", `{"filter":"` + strings.Repeat("a", maxBody) + `"}`, nil, 413, "too large"},
		{"not JSON", "/api/filter", `{"filter":`, nil, 400, "bad JSON"},
		{"unknown field", "/api/filter", `{"filter":"","x":1}`, nil, 400, "unknown field"},
		{"two values", "/api/filter", `{"filter":""}{"filter":""}`, nil, 400, "more than one"},
		{"wrong type", "/api/connect", `{"host":"HERON-SRV"}`, nil, 400, "host"},
		{"bad filter", "/api/filter", `{"filter":"10.0.0"}`, nil, 400, "10.0.0"},
		{"unknown host", "/api/connect", `{"host":999}`, nil, 400, "unknown host"},
		{"unknown session", "/api/close/nope", `{}`, nil, 404, "no such session"},
		{"unknown prompt", "/api/prompt/nope", `{"cancel":true}`, nil, 404, "no such prompt"},
		{"prompt without account", "/api/prompt/nope", `{"account":" ","password":"` + adminPassword + `"}`, nil, 400, "account"},
		{"prompt with bad account", "/api/prompt/nope", `{"account":"a\\b\\c","password":"` + adminPassword + `"}`, nil, 400, "account"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, m := tc.post(t, p, c.path, c.body, c.opts...)
			msg, _ := m["error"].(string)
			if code != c.code || !strings.Contains(msg, c.msg) {
				t.Fatalf("got %d %q, want %d with %q", code, msg, c.code, c.msg)
			}
		})
	}
	if code, _ := tc.post(t, p, "/api/filter", `{"filter":"heron"}`); code != 200 {
		t.Fatalf("a good request after the bad ones: %d", code)
	}
	// GET on an action, POST on the stream.
	resp, err := tc.c.Get(tc.ts.URL + "/api/filter")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /api/filter: %d", resp.StatusCode)
	}
}

func TestStreamChecks(t *testing.T) {
	tc := newTestConsole(t)
	p := tc.open(t)
	for _, q := range []string{"", "?page=" + p.id, "?page=" + p.id + "&token=" + strings.Repeat("1", 64)} {
		resp, err := tc.c.Get(tc.ts.URL + "/api/events" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("stream %q: %d", q, resp.StatusCode)
		}
	}
	s := tc.stream(t, p)
	s.next(t, "first scan status", isEvent("scan"))
	resp, err := tc.c.Get(tc.ts.URL + "/api/events?page=" + p.id + "&token=" + p.token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("second stream of a page: %d", resp.StatusCode)
	}
	// Once its stream is closed, the page is gone: its token no longer works.
	s.stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := tc.post(t, p, "/api/filter", `{"filter":""}`)
		if code == 403 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the token of a closed page still works: %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitList applies host and hide events to a list until it equals want.
func waitList(t *testing.T, s *stream, list map[float64]string, want ...string) {
	t.Helper()
	ok := func() bool {
		if len(list) != len(want) {
			return false
		}
		for _, w := range want {
			found := false
			for _, n := range list {
				found = found || n == w
			}
			if !found {
				return false
			}
		}
		return true
	}
	for !ok() {
		ev := s.next(t, "list "+strings.Join(want, ","), func(ev sseEvent) bool { return ev.name == "host" || ev.name == "hide" })
		id, _ := ev.data["id"].(float64)
		if ev.name == "host" {
			list[id], _ = ev.data["name"].(string)
		} else {
			delete(list, id)
		}
	}
}

func TestHostsAndFilter(t *testing.T) {
	tc := newTestConsole(t)
	p := tc.open(t)
	s := tc.stream(t, p)
	if ev := s.next(t, "scan status", isEvent("scan")); ev.data["scanning"] != true {
		t.Fatalf("first scan status %v", ev.data)
	}
	list := map[float64]string{}
	waitList(t, s, list, "HERON-SRV", "PC-01")
	// The filter narrows the list while the scan is still running.
	if code, m := tc.post(t, p, "/api/filter", `{"filter":"pc-*"}`); code != 200 || m["filter"] != "pc-*" {
		t.Fatalf("filter: %d %v", code, m)
	}
	waitList(t, s, list, "PC-01")
	close(tc.release)
	waitList(t, s, list, "PC-01", "PC-02")
	s.next(t, "end of scan", func(ev sseEvent) bool { return ev.name == "scan" && ev.data["scanning"] == false })
	// And still after the scan.
	if code, _ := tc.post(t, p, "/api/filter", `{"filter":"10.9.0.5, pc-02"}`); code != 200 {
		t.Fatal(code)
	}
	waitList(t, s, list, "HERON-SRV", "PC-02")
}

// hostID waits for the host named name and returns its ID.
func hostID(t *testing.T, s *stream, name string) int {
	t.Helper()
	ev := s.next(t, "host "+name, isEvent("host", "name", name))
	return int(ev.data["id"].(float64))
}

func connectTo(t *testing.T, tc *testConsole, p testPage, id int) string {
	t.Helper()
	code, m := tc.post(t, p, "/api/connect", `{"host":`+jsonInt(id)+`}`)
	sid, _ := m["session"].(string)
	if code != 200 || sid == "" {
		t.Fatalf("connect: %d %v", code, m)
	}
	return sid
}

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestConnectPromptRunningClose(t *testing.T) {
	tc := newTestConsole(t)
	p, other := tc.open(t), tc.open(t)
	s, so := tc.stream(t, p), tc.stream(t, other)
	sid := connectTo(t, tc, p, hostID(t, s, "HERON-SRV"))

	// The prompt goes to the page that connected, with the diagnosis.
	pr := s.next(t, "prompt", isEvent("prompt", "session", sid))
	diag, _ := pr.data["diagnosis"].(map[string]any)
	if sum, _ := diag["summary"].(string); !strings.Contains(sum, "not administrator on HERON-SRV") || pr.data["host"] != "HERON-SRV" {
		t.Fatalf("prompt %s", pr.raw)
	}
	tc.srv.mu.Lock()
	st, step := tc.srv.sessions[sid].s.State()
	tc.srv.mu.Unlock()
	if st != session.Connecting || step != session.StepCredentials {
		t.Fatalf("session %s/%s while the prompt is open", st, step)
	}
	pid := pr.data["id"].(string)
	body := `{"account":"` + strings.ReplaceAll(adminAccount, `\`, `\\`) + `","password":"` + adminPassword + `"}`
	// Another page cannot answer it.
	if code, _ := tc.post(t, other, "/api/prompt/"+pid, body); code != 404 {
		t.Fatalf("another page answered the prompt: %d", code)
	}
	if code, _ := tc.post(t, p, "/api/prompt/"+pid, body); code != 200 {
		t.Fatalf("answer: %d", code)
	}
	if code, _ := tc.post(t, p, "/api/prompt/"+pid, body); code != 404 {
		t.Fatalf("second answer: %d", code)
	}
	run := s.next(t, "Running", isEvent("session", "id", sid, "state", "Running"))
	if run.data["account"] != adminAccount || run.data["method"] != "fake" {
		t.Fatalf("running %s", run.raw)
	}
	// Every page sees the sessions, and a page loaded later (a reload)
	// sees those that exist.
	so.next(t, "Running on the other page", isEvent("session", "id", sid, "state", "Running"))
	tc.stream(t, tc.open(t)).next(t, "Running on a new page", isEvent("session", "id", sid, "state", "Running"))

	if code, _ := tc.post(t, other, "/api/close/"+sid, `{}`); code != 202 {
		t.Fatalf("close: %d", code)
	}
	closed := s.next(t, "Closed", isEvent("session", "id", sid, "state", "Closed"))
	if cl, _ := closed.data["cleanup"].(map[string]any); cl == nil || len(cl["left"].([]any)) != 0 {
		t.Fatalf("closed %s", closed.raw)
	}
	select {
	case <-tc.handle.stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the applet was not stopped")
	}
	tc.auth.mu.Lock()
	tried := len(tc.auth.tried)
	last := tc.auth.tried[tried-1]
	tc.auth.mu.Unlock()
	if pw, _ := last.Password(); tried != 2 || pw != adminPassword {
		t.Fatalf("authenticator saw %d attempts, last %v", tried, last)
	}
	for _, st := range []*stream{s, so} {
		if strings.Contains(st.text(), adminPassword) || strings.Contains(st.text(), userPassword) {
			t.Fatal("a password appears in the event stream")
		}
	}
	// The page's answer is not remembered: a second Connect asks again.
	sid2 := connectTo(t, tc, p, hostID(t, tc.stream(t, tc.open(t)), "PC-01"))
	s.next(t, "second prompt", isEvent("prompt", "session", sid2))
}

func TestPromptCancelled(t *testing.T) {
	tc := newTestConsole(t)
	p := tc.open(t)
	s := tc.stream(t, p)
	sid := connectTo(t, tc, p, hostID(t, s, "HERON-SRV"))
	pr := s.next(t, "prompt", isEvent("prompt", "session", sid))
	if code, _ := tc.post(t, p, "/api/prompt/"+pr.data["id"].(string), `{"cancel":true}`); code != 200 {
		t.Fatal(code)
	}
	f := s.next(t, "Failed", isEvent("session", "id", sid, "state", "Failed"))
	if d, _ := f.data["diagnosis"].(map[string]any); d == nil || f.data["step"] != "credentials" && f.data["step"] != "authenticate" {
		t.Fatalf("failed %s", f.raw)
	}
}

func TestClosedPageCancelsItsPrompts(t *testing.T) {
	tc := newTestConsole(t)
	p, watcher := tc.open(t), tc.open(t)
	s, w := tc.stream(t, p), tc.stream(t, watcher)
	sid := connectTo(t, tc, p, hostID(t, s, "HERON-SRV"))
	s.next(t, "prompt", isEvent("prompt", "session", sid))
	s.stop() // the technician closes the tab
	f := w.next(t, "Failed", isEvent("session", "id", sid, "state", "Failed"))
	tc.srv.mu.Lock()
	ss := tc.srv.sessions[sid].s
	tc.srv.mu.Unlock()
	res, err := ss.Wait(context.Background())
	if err != nil || !errors.Is(res.Err, adauth.ErrPromptCanceled) {
		t.Fatalf("result %v %v (event %s)", res.Err, err, f.raw)
	}
	tc.srv.mu.Lock()
	n := len(tc.srv.prompts)
	tc.srv.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d prompts still pending", n)
	}
}

func TestClosingConnectingSessionEndsItsPrompt(t *testing.T) {
	tc := newTestConsole(t)
	p := tc.open(t)
	s := tc.stream(t, p)
	sid := connectTo(t, tc, p, hostID(t, s, "HERON-SRV"))
	pr := s.next(t, "prompt", isEvent("prompt", "session", sid))
	if code, _ := tc.post(t, p, "/api/close/"+sid, `{}`); code != 202 {
		t.Fatal(code)
	}
	s.next(t, "prompt-done", isEvent("prompt-done", "id", pr.data["id"].(string)))
	s.next(t, "end of the session", func(ev sseEvent) bool {
		return ev.name == "session" && ev.data["id"] == sid && (ev.data["state"] == "Closed" || ev.data["state"] == "Failed")
	})
}

// TestOneDiscoveryForAllPages: pages opened before, during and after the
// scan all get the whole list, from one run of the discoverer (one sweep,
// one directory bind), not one per page.
func TestOneDiscoveryForAllPages(t *testing.T) {
	tc := newTestConsole(t)
	var streams []*stream
	var lists []map[float64]string
	for range 6 {
		streams = append(streams, tc.stream(t, tc.open(t)))
		lists = append(lists, map[float64]string{})
	}
	for i, s := range streams {
		waitList(t, s, lists[i], "HERON-SRV", "PC-01")
	}
	close(tc.release)
	streams = append(streams, tc.stream(t, tc.open(t)))
	lists = append(lists, map[float64]string{})
	for i, s := range streams {
		waitList(t, s, lists[i], "HERON-SRV", "PC-01", "PC-02")
		s.next(t, "end of scan", func(ev sseEvent) bool { return ev.name == "scan" && ev.data["scanning"] == false })
	}
	if n := tc.scans.Load(); n != 1 {
		t.Fatalf("the discoverer ran %d times for %d pages, want once", n, len(streams))
	}
}

// TestRescanResetsEveryPage: a rescan from one page runs the discovery
// once more, for every page: each page's list is reset and fills again
// under its own filter, and a connect to an ID of the old list is refused.
func TestRescanResetsEveryPage(t *testing.T) {
	tc := newTestConsole(t)
	p, other := tc.open(t), tc.open(t)
	s, so := tc.stream(t, p), tc.stream(t, other)
	if code, _ := tc.post(t, other, "/api/filter", `{"filter":"pc-*"}`); code != 200 {
		t.Fatal(code)
	}
	close(tc.release)
	list, olist := map[float64]string{}, map[float64]string{}
	waitList(t, s, list, "HERON-SRV", "PC-01", "PC-02")
	waitList(t, so, olist, "PC-01", "PC-02")
	for _, st := range []*stream{s, so} {
		st.next(t, "end of scan", func(ev sseEvent) bool { return ev.name == "scan" && ev.data["scanning"] == false })
	}
	if code, m := tc.post(t, p, "/api/rescan", `{}`); code != 202 || m["rescan"] != true {
		t.Fatalf("rescan: %d %v", code, m)
	}
	for i, st := range []*stream{s, so} {
		st.next(t, "the list's reset", isEvent("reset"))
		if ev := st.next(t, "scan status", isEvent("scan")); ev.data["scanning"] != true {
			t.Fatalf("page %d: scan status after the reset %v", i, ev.data)
		}
	}
	stale := -1
	for id, name := range list {
		if name == "PC-02" {
			stale = int(id)
		}
	}
	clear(list)
	clear(olist)
	waitList(t, s, list, "HERON-SRV", "PC-01", "PC-02")
	for id := range list {
		if int(id) == stale {
			t.Fatalf("the new list reuses the old list's ID %d", stale)
		}
	}
	if code, _ := tc.post(t, p, "/api/connect", `{"host":`+jsonInt(stale)+`}`); code != 400 {
		t.Fatalf("connect to a host ID of the list before the rescan: %d, want 400", code)
	}
	waitList(t, so, olist, "PC-01", "PC-02")
	for _, st := range []*stream{s, so} {
		st.next(t, "end of the rescan", func(ev sseEvent) bool { return ev.name == "scan" && ev.data["scanning"] == false })
	}
	if n := tc.scans.Load(); n != 2 {
		t.Fatalf("the discoverer ran %d times for one rescan and two pages, want twice", n)
	}
	if code, _ := tc.post(t, p, "/api/rescan", `{}`, noHeader("X-CSRF-Token")); code != 403 {
		t.Fatalf("rescan without the page's token: %d", code)
	}
}

// TestTechnicianAuth: every route needs the launch secret's cookie; the
// secret in the URL sets it and is redirected away.
func TestTechnicianAuth(t *testing.T) {
	tc := newTestConsole(t)
	p := tc.open(t)
	noRedirect := func(c *http.Client) *http.Client {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		return c
	}
	anon := noRedirect(&http.Client{})
	do := func(c *http.Client, method, path string, cookie string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, tc.ts.URL+path, strings.NewReader(`{"filter":""}`))
		req.Header.Set("Origin", tc.ts.URL)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Page-ID", p.id)
		req.Header.Set("X-CSRF-Token", p.token)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	routes := []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/static/app.js"}, {"GET", "/api/events?page=" + p.id + "&token=" + p.token},
		{"POST", "/api/filter"}, {"POST", "/api/connect"}, {"POST", "/api/prompt/x"}, {"POST", "/api/close/x"},
	}
	wrong := "lanconnect-console=" + strings.Repeat("0", len(tc.secret))
	for _, r := range routes {
		if resp := do(anon, r.method, r.path, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without the cookie: %d, want 401", r.method, r.path, resp.StatusCode)
		}
		if resp := do(anon, r.method, r.path, wrong); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s with a wrong cookie: %d, want 403", r.method, r.path, resp.StatusCode)
		}
	}
	// A wrong key in the URL, or the right key on a POST: refused.
	if resp := do(anon, "GET", "/?key="+strings.Repeat("f", len(tc.secret)), ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("wrong key: %d", resp.StatusCode)
	}
	if resp := do(anon, "POST", "/api/filter?key="+tc.secret, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("key on a POST: %d", resp.StatusCode)
	}
	// The right key: a cookie and a redirect to the URL without the key.
	resp := do(anon, "GET", "/?key="+tc.secret+"&x=1", "")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/?x=1" {
		t.Fatalf("sign-in: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cs := resp.Cookies()
	if len(cs) != 1 || cs[0].Value != tc.secret || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Secure || cs[0].Path != "/" {
		t.Fatalf("cookie %+v", cs)
	}
	if resp := do(anon, "GET", "/", cs[0].Name+"="+cs[0].Value); resp.StatusCode != 200 {
		t.Fatalf("with the cookie: %d", resp.StatusCode)
	}
	// The other checks still hold for a signed-in client.
	if code, _ := tc.post(t, p, "/api/filter", `{"filter":""}`, header("Origin", "http://evil.example")); code != 403 {
		t.Fatalf("foreign Origin with the cookie: %d", code)
	}
	if strings.Contains(tc.log.String(), tc.secret) {
		t.Error("the secret appears in the log")
	}
}
