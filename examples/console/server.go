package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

// The console's HTTP side. Each load of the page is a "page" with an ID
// and a CSRF token. The page opens one Server-Sent Events stream, which
// carries everything the server has to say to it: its own host list (a
// discovery.View under the page's filter), every session's state, and the
// credential prompts of the sessions it started. Actions are JSON POSTs
// that carry the page's ID and token. When the stream closes, the page is
// gone: its view stops and its pending prompts are answered "cancelled".

//go:embed static
var staticFiles embed.FS

// Limits of the API.
const (
	maxBody     = 4 << 10         // bytes of a POST body
	maxPages    = 64              // pages alive at once
	pageOpenTTL = 1 * time.Minute // a page must open its stream within this
	pingEvery   = 15 * time.Second
)

// server is the console's HTTP handler.
type server struct {
	client  *session.Client
	log     *slog.Logger
	origin  string           // scheme://host[:port] the page is served from
	host    string           // the Host header requests must carry
	secure  bool             // served over HTTPS
	secret  string           // the per-launch secret of the technician's URL
	filter  discovery.Filter // initial filter of new pages
	sources int              // discovery sources, for the scan progress
	index   *template.Template
	static  http.Handler

	// ctx ends the streams (shutdown); sessCtx bounds the sessions.
	ctx       context.Context
	stop      context.CancelFunc
	sessCtx   context.Context
	sessStop  context.CancelFunc
	closeWait time.Duration // how long a Close may take

	mu       sync.Mutex
	pages    map[string]*page
	sessions map[string]*sessionEntry
	order    []string // session IDs, oldest first
	prompts  map[string]*prompt
	pumps    sync.WaitGroup
}

// serverConfig is what newServer needs.
type serverConfig struct {
	Client *session.Client
	Logger *slog.Logger
	Origin string // e.g. "http://127.0.0.1:8080" or "https://jump.example:8443"
	// Secret is the per-launch secret that the technician's URL carries
	// (see LaunchURL); every request needs it or its cookie.
	Secret string
	Filter discovery.Filter
	// Sources is the number of the Client's discoverers (for the scan
	// progress). The Client runs them once for every page
	// (session.Client.Hosts), again on a rescan.
	Sources int
}

func newServer(c serverConfig) (*server, error) {
	host, ok := strings.CutPrefix(c.Origin, "http://")
	secure := false
	if !ok {
		host, secure = strings.CutPrefix(c.Origin, "https://")
	}
	if host == "" || strings.ContainsAny(host, "/?#@") {
		return nil, fmt.Errorf("origin %q: want http://HOST:PORT or https://HOST:PORT", c.Origin)
	}
	if len(c.Secret) < minSecretLen {
		return nil, errors.New("the launch secret is missing or too short")
	}
	sub, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, err
	}
	idx, err := template.ParseFS(sub, "index.html")
	if err != nil {
		return nil, err
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{
		client: c.Client, log: log, origin: c.Origin, host: host, secure: secure, secret: c.Secret, filter: c.Filter, sources: c.Sources,
		index: idx, static: http.FileServerFS(sub), closeWait: 2 * session.DefaultCleanupTimeout,
		pages: map[string]*page{}, sessions: map[string]*sessionEntry{}, prompts: map[string]*prompt{},
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.sessCtx, s.sessStop = context.WithCancel(context.Background())
	return s, nil
}

// page is one load of the page in a browser.
type page struct {
	id, token string
	created   time.Time
	ctx       context.Context // ends when the page's stream closes
	cancel    context.CancelFunc

	mu        sync.Mutex
	streaming bool
	view      *discovery.View
	filter    discovery.Filter
	hosts     map[discovery.HostID]discovery.Host // every host shown to it
	dirty     map[string]bool                     // sessions with news for it
	out       []sseMessage                        // prompt messages for it
	wake      chan struct{}                       // capacity 1
	rescan    chan struct{}                       // capacity 1: start a new list
}

type sseMessage struct {
	event string
	data  any
}

func (p *page) send(m sseMessage) {
	p.mu.Lock()
	p.out = append(p.out, m)
	p.mu.Unlock()
	p.poke()
}

func (p *page) markDirty(id string) {
	p.mu.Lock()
	p.dirty[id] = true
	p.mu.Unlock()
	p.poke()
}

func (p *page) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// sessionEntry is a session and what the pages are shown of it.
type sessionEntry struct {
	s    *session.Session
	view sessionJSON // guarded by server.mu
}

// prompt is a credential request waiting for its page's answer.
type prompt struct {
	id     string
	page   *page
	answer chan promptAnswer // capacity 1
}

type promptAnswer struct {
	creds  adauth.Credentials
	cancel bool
}

// ---- JSON shapes sent to the page ----

type hostJSON struct {
	ID      discovery.HostID `json:"id"`
	Name    string           `json:"name"`
	DNSName string           `json:"dns,omitempty"`
	Addrs   []string         `json:"addrs"`
	Domain  string           `json:"domain"`
	OS      string           `json:"os"`
	Sources []string         `json:"sources"`
	// Conflict is discovery.Host.Conflict: why the host's name is in
	// doubt (connecting to it is refused).
	Conflict string `json:"conflict,omitempty"`
}

func toHostJSON(id discovery.HostID, h discovery.Host) hostJSON {
	j := hostJSON{ID: id, Name: h.Name, DNSName: h.DNSName, Domain: h.Domain, OS: h.OS, Addrs: []string{}, Sources: []string{}, Conflict: h.Conflict}
	if h.OSVersion != "" {
		j.OS = strings.TrimSpace(h.OS + " " + h.OSVersion)
	}
	for _, a := range h.Addrs {
		j.Addrs = append(j.Addrs, a.String())
	}
	for _, src := range h.Sources {
		j.Sources = append(j.Sources, string(src))
	}
	return j
}

type diagJSON struct {
	Code    string `json:"code"`
	Summary string `json:"summary"`
	Fix     string `json:"fix,omitempty"`
}

type sessionJSON struct {
	ID        string       `json:"id"`
	Host      string       `json:"host"`
	Addr      string       `json:"addr"`
	State     string       `json:"state"`
	Step      string       `json:"step"`
	Method    string       `json:"method,omitempty"`
	Account   string       `json:"account,omitempty"`
	Done      int64        `json:"done,omitempty"`
	Total     int64        `json:"total,omitempty"`
	Error     string       `json:"error,omitempty"`
	Diagnosis *diagJSON    `json:"diagnosis,omitempty"`
	Attempts  []string     `json:"attempts,omitempty"`
	Closing   bool         `json:"closing,omitempty"`
	Cleanup   *cleanupJSON `json:"cleanup,omitempty"`
}

type cleanupJSON struct {
	Undone int      `json:"undone"`
	Left   []string `json:"left"`
}

type promptJSON struct {
	ID        string    `json:"id"`
	Session   string    `json:"session,omitempty"`
	Host      string    `json:"host"`
	Account   string    `json:"account,omitempty"`
	Attempt   int       `json:"attempt"`
	Diagnosis *diagJSON `json:"diagnosis,omitempty"`
}

// ---- routing and checks ----

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.Handle("GET /static/", http.StripPrefix("/static/", s.static))
	mux.HandleFunc("GET /api/events", s.handleEvents)
	mux.HandleFunc("POST /api/filter", s.handleFilter)
	mux.HandleFunc("POST /api/rescan", s.handleRescan)
	mux.HandleFunc("POST /api/connect", s.handleConnect)
	mux.HandleFunc("POST /api/prompt/{id}", s.handlePrompt)
	mux.HandleFunc("POST /api/close/{session}", s.handleClose)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-store")
		// The Host check defeats DNS rebinding: a page from another
		// site that gets its name resolved to 127.0.0.1 sends its own
		// name as Host.
		if r.Host != s.host {
			writeError(w, http.StatusMisdirectedRequest, "unexpected Host header")
			return
		}
		if !s.authorized(w, r) {
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// apiError is the body of every failed API request.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, apiError{msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// action checks a state-changing request (Origin, page token, content
// type) and decodes its JSON body into v. It writes the error and returns
// nil when the request is refused.
func (s *server) action(w http.ResponseWriter, r *http.Request, v any) *page {
	if o := r.Header.Get("Origin"); o != s.origin {
		writeError(w, http.StatusForbidden, "cross-origin request refused")
		return nil
	}
	p := s.pageFor(r.Header.Get("X-Page-ID"), r.Header.Get("X-CSRF-Token"))
	if p == nil {
		writeError(w, http.StatusForbidden, "missing or invalid CSRF token")
		return nil
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
		return nil
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body too large")
		} else {
			writeError(w, http.StatusBadRequest, "bad JSON body: "+jsonProblem(err))
		}
		return nil
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "bad JSON body: more than one value")
		return nil
	}
	return p
}

// jsonProblem describes a decoding error without quoting the input (a
// password could be in it).
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q must be a %s", te.Field, te.Type)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	return "not a JSON object of the expected shape"
}

// pageFor returns the live page with this ID and token, or nil.
func (s *server) pageFor(id, token string) *page {
	if id == "" || token == "" {
		return nil
	}
	s.mu.Lock()
	p := s.pages[id]
	s.mu.Unlock()
	if p == nil || subtle.ConstantTimeCompare([]byte(p.token), []byte(token)) != 1 {
		return nil
	}
	return p
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// ---- the page ----

func (s *server) handleIndex(w http.ResponseWriter, r *http.Request) {
	p, err := s.newPage()
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy",
		"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	err = s.index.Execute(w, struct{ PageID, Token, Filter string }{p.id, p.token, s.filter.String()})
	if err != nil {
		s.log.Warn("page", "err", err)
	}
}

func (s *server) newPage() (*page, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range s.pages {
		p.mu.Lock()
		stale := !p.streaming && time.Since(p.created) > pageOpenTTL
		p.mu.Unlock()
		if stale {
			s.dropPageLocked(id)
		}
	}
	if len(s.pages) >= maxPages {
		return nil, errors.New("too many open pages")
	}
	p := &page{id: randomID(12), token: randomID(32), created: time.Now(), filter: s.filter,
		hosts: map[discovery.HostID]discovery.Host{}, dirty: map[string]bool{}, wake: make(chan struct{}, 1), rescan: make(chan struct{}, 1)}
	p.ctx, p.cancel = context.WithCancel(s.ctx)
	s.pages[p.id] = p
	return p, nil
}

// dropPageLocked forgets a page and ends its context, which stops its view
// and cancels its pending prompts. s.mu is held.
func (s *server) dropPageLocked(id string) {
	if p := s.pages[id]; p != nil {
		p.cancel()
		delete(s.pages, id)
	}
}

// ---- the event stream ----

func (s *server) handleEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := s.pageFor(q.Get("page"), q.Get("token"))
	if p == nil {
		writeError(w, http.StatusForbidden, "unknown page or bad token: reload the page")
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming unsupported")
		return
	}
	p.mu.Lock()
	if p.streaming {
		p.mu.Unlock()
		writeError(w, http.StatusConflict, "this page already has a stream: reload the page")
		return
	}
	p.streaming = true
	// The Client's one discovery: every page shares it. A rescan asked
	// before the stream opened is in this view already.
	select {
	case <-p.rescan:
	default:
	}
	p.view = s.client.Hosts(p.ctx, p.filter)
	events := p.view.Events()
	p.mu.Unlock()
	// The sessions that exist already are news to the page.
	s.mu.Lock()
	p.mu.Lock()
	for _, id := range s.order {
		p.dirty[id] = true
	}
	p.mu.Unlock()
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.dropPageLocked(p.id)
		s.mu.Unlock()
		s.log.Debug("page closed", "page", p.id)
	}()

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s.log.Debug("page open", "page", p.id)

	finished := 0
	var scanErrs []string
	// The page's host IDs are the view's plus base, so that after a
	// rescan (whose IDs start again at 1) no ID of the old list names a
	// host of the new one: a Connect clicked on a stale row is refused.
	var base, maxID discovery.HostID
	scan := func() sseMessage {
		return sseMessage{"scan", map[string]any{"scanning": finished < s.sources, "errors": scanErrs}}
	}
	if err := writeSSE(w, scan()); err != nil {
		return
	}
	fl.Flush()
	p.poke()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	for {
		var msgs []sseMessage
		select {
		case <-p.rescan:
			// A rescan replaced the discovery: the page starts a new
			// list on a view of the new one.
			p.mu.Lock()
			p.view = s.client.Hosts(p.ctx, p.filter)
			events = p.view.Events()
			clear(p.hosts)
			p.mu.Unlock()
			base = maxID
			finished, scanErrs = 0, nil
			msgs = append(msgs, sseMessage{"reset", map[string]any{}}, scan())
		case ev, ok := <-events:
			if !ok {
				// The view ended: the page is gone (handled below), a
				// rescan replaced it (p.rescan comes), or the Client
				// was closed.
				events = nil
				finished = s.sources
				msgs = append(msgs, scan())
				break
			}
			switch ev.Kind {
			case discovery.Show:
				id := base + ev.ID
				maxID = max(maxID, id)
				p.mu.Lock()
				p.hosts[id] = ev.Host
				p.mu.Unlock()
				msgs = append(msgs, sseMessage{"host", toHostJSON(id, ev.Host)})
			case discovery.Hide:
				msgs = append(msgs, sseMessage{"hide", map[string]any{"id": base + ev.ID}})
			case discovery.Complete: // the page's view stays open for the filter
				finished = s.sources
				msgs = append(msgs, scan())
			case discovery.SourceFinished:
				finished++
				if ev.Err != nil {
					scanErrs = append(scanErrs, ev.Err.Error())
				}
				msgs = append(msgs, scan())
			}
		case <-p.wake:
			msgs = s.pending(p)
		case <-ping.C:
			if _, err := io.WriteString(w, ": ping\n\n"); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-p.ctx.Done():
			return
		}
		for _, m := range msgs {
			if err := writeSSE(w, m); err != nil {
				return
			}
		}
		fl.Flush()
	}
}

// pending takes the messages waiting for p: its prompt messages, then the
// latest state of every session with news.
func (s *server) pending(p *page) []sseMessage {
	p.mu.Lock()
	msgs := p.out
	p.out = nil
	dirty := p.dirty
	p.dirty = map[string]bool{}
	p.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range s.order {
		if dirty[id] {
			msgs = append(msgs, sseMessage{"session", s.sessions[id].view})
		}
	}
	return msgs
}

func writeSSE(w io.Writer, m sseMessage) error {
	b, err := json.Marshal(m.data)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", m.event, b)
	return err
}

// ---- actions ----

func (s *server) handleFilter(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Filter string `json:"filter"`
	}
	p := s.action(w, r, &req)
	if p == nil {
		return
	}
	f, err := discovery.ParseFilter(req.Filter)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p.mu.Lock()
	p.filter = f
	v := p.view
	p.mu.Unlock()
	if v != nil {
		v.SetFilter(f)
	}
	writeJSON(w, http.StatusOK, map[string]string{"filter": f.String()})
}

// handleRescan starts the Client's discovery again (session.Client.Rescan):
// every page's list is reset and fills again from the new scan.
func (s *server) handleRescan(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	p := s.action(w, r, &req)
	if p == nil {
		return
	}
	if err := s.client.Rescan(); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	s.mu.Lock()
	pages := s.livePagesLocked()
	s.mu.Unlock()
	for _, pg := range pages {
		select {
		case pg.rescan <- struct{}{}:
		default: // one is already pending
		}
	}
	s.log.Info("rescan", "page", p.id)
	writeJSON(w, http.StatusAccepted, map[string]bool{"rescan": true})
}

func (s *server) handleConnect(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Host discovery.HostID `json:"host"`
	}
	p := s.action(w, r, &req)
	if p == nil {
		return
	}
	p.mu.Lock()
	h, ok := p.hosts[req.Host]
	p.mu.Unlock()
	if !ok {
		writeError(w, http.StatusBadRequest, "unknown host: connect to a host of the list")
		return
	}
	// The session's own prompt asks this page; sessCtx bounds Connecting
	// (shutdown cancels it).
	sess := s.client.ConnectWith(s.sessCtx, h, session.ConnectOptions{Prompt: func(ctx context.Context, req adauth.PromptRequest) (adauth.Credentials, error) {
		return s.ask(ctx, p, req)
	}})
	e := &sessionEntry{s: sess, view: sessionJSON{ID: sess.ID(), Host: hostLabel(h), Addr: sess.Result().Addr, State: string(session.Connecting)}}
	s.mu.Lock()
	s.sessions[sess.ID()] = e
	s.order = append(s.order, sess.ID())
	s.pumps.Add(1)
	s.mu.Unlock()
	go s.pump(e)
	s.log.Info("connect", "session", sess.ID(), "host", e.view.Host, "page", p.id)
	writeJSON(w, http.StatusOK, map[string]string{"session": sess.ID()})
}

func hostLabel(h discovery.Host) string {
	if h.Name != "" {
		return h.Name
	}
	if h.DNSName != "" {
		return h.DNSName
	}
	if len(h.Addrs) > 0 {
		return h.Addrs[0].String()
	}
	return "?"
}

// pump applies a session's events to its view and tells every page.
func (s *server) pump(e *sessionEntry) {
	defer s.pumps.Done()
	for ev := range e.s.Events() {
		s.mu.Lock()
		v := &e.view
		v.State, v.Step = string(ev.State), string(ev.Step)
		if ev.Addr != "" {
			v.Addr = ev.Addr
		}
		if ev.Method != "" {
			v.Method = ev.Method
		}
		switch ev.Kind {
		case session.EventProgress:
			v.Done, v.Total = ev.Done, ev.Total
		case session.EventAttempt:
			a := ev.Method + " failed"
			if !ev.Diagnosis.IsZero() {
				a += ": " + ev.Diagnosis.Summary
			}
			v.Attempts = append(v.Attempts, a)
		}
		if ev.State == session.Failed || ev.State == session.Closed {
			if ev.Err != nil {
				v.Error = ev.Err.Error()
			}
			if !ev.Diagnosis.IsZero() {
				v.Diagnosis = &diagJSON{string(ev.Diagnosis.Code), ev.Diagnosis.Summary, ev.Diagnosis.Fix}
			}
			v.Closing = false
		}
		if res := ev.Result; res != nil {
			v.Account = res.Account
			if c := res.Cleanup; c != nil {
				v.Cleanup = &cleanupJSON{Undone: len(c.Undone), Left: []string{}}
				for _, l := range c.Left {
					v.Cleanup.Left = append(v.Cleanup.Left, l.What)
				}
			}
		}
		pages := s.livePagesLocked()
		s.mu.Unlock()
		for _, p := range pages {
			p.markDirty(e.view.ID)
		}
	}
}

func (s *server) livePagesLocked() []*page {
	ps := make([]*page, 0, len(s.pages))
	for _, p := range s.pages {
		ps = append(ps, p)
	}
	return ps
}

func (s *server) handleClose(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if s.action(w, r, &req) == nil {
		return
	}
	id := r.PathValue("session")
	s.mu.Lock()
	e := s.sessions[id]
	if e != nil && !session.State(e.view.State).Terminal() {
		e.view.Closing = true
	}
	pages := s.livePagesLocked()
	s.mu.Unlock()
	if e == nil {
		writeError(w, http.StatusNotFound, "no such session")
		return
	}
	for _, p := range pages {
		p.markDirty(id)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.closeWait)
		defer cancel()
		c, err := e.s.Close(ctx)
		s.log.Info("session closed", "session", id, "undone", len(c.Undone), "left", len(c.Left), "err", err)
	}()
	writeJSON(w, http.StatusAccepted, map[string]string{"session": id})
}

// ---- prompts ----

// ask is the prompt of the sessions that page p started
// (session.ConnectOptions.Prompt): it asks p and waits for its answer.
// The request names the session and its host, so nothing else needs to
// travel with the session. Under the Client's lockout guard, one answer
// may serve other sessions waiting on the same refused credentials.
func (s *server) ask(ctx context.Context, p *page, req adauth.PromptRequest) (adauth.Credentials, error) {
	pr := &prompt{id: randomID(12), page: p, answer: make(chan promptAnswer, 1)}
	msg := promptJSON{ID: pr.id, Session: req.Session, Host: hostLabel(req.Host), Account: req.Account, Attempt: req.Attempt}
	if d := req.Diagnosis; !d.IsZero() {
		msg.Diagnosis = &diagJSON{string(d.Code), d.Summary, d.Fix}
	}
	s.mu.Lock()
	if _, alive := s.pages[p.id]; !alive {
		s.mu.Unlock()
		return adauth.Credentials{}, adauth.ErrPromptCanceled
	}
	s.prompts[pr.id] = pr
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.prompts, pr.id)
		s.mu.Unlock()
	}()
	p.send(sseMessage{"prompt", msg})
	s.log.Info("credentials asked", "session", msg.Session, "host", msg.Host, "prompt", pr.id)
	select {
	case a := <-pr.answer:
		if a.cancel {
			return adauth.Credentials{}, adauth.ErrPromptCanceled
		}
		return a.creds, nil
	case <-p.ctx.Done():
		// The page went away: nobody will answer.
		return adauth.Credentials{}, adauth.ErrPromptCanceled
	case <-ctx.Done():
		p.send(sseMessage{"prompt-done", map[string]string{"id": pr.id}})
		return adauth.Credentials{}, ctx.Err()
	}
}

func (s *server) handlePrompt(w http.ResponseWriter, r *http.Request) {
	// The password is in this request's body only: it goes into the
	// Credentials handed to the session and nowhere else (not in logs,
	// errors, responses or the event stream).
	var req struct {
		Account  string `json:"account"`
		Password string `json:"password"`
		Cancel   bool   `json:"cancel"`
	}
	p := s.action(w, r, &req)
	if p == nil {
		return
	}
	id := r.PathValue("id")
	var a promptAnswer
	if req.Cancel {
		a.cancel = true
	} else {
		if strings.TrimSpace(req.Account) == "" {
			writeError(w, http.StatusBadRequest, "account is required")
			return
		}
		c, err := adauth.Parse(req.Account, req.Password)
		if err != nil {
			writeError(w, http.StatusBadRequest, "account: "+err.Error())
			return
		}
		a.creds = c
	}
	s.mu.Lock()
	pr := s.prompts[id]
	if pr == nil || pr.page != p {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "no such prompt waiting")
		return
	}
	delete(s.prompts, id)
	s.mu.Unlock()
	pr.answer <- a
	s.log.Info("credentials answered", "prompt", id, "cancelled", a.cancel, "account", a.creds)
	writeJSON(w, http.StatusOK, map[string]string{"prompt": id})
}

// ---- shutdown ----

// shutdown closes every session that is not over, waiting up to ctx, then
// ends the streams.
func (s *server) shutdown(ctx context.Context) {
	s.mu.Lock()
	var open []*session.Session
	for _, id := range s.order {
		if e := s.sessions[id]; !session.State(e.view.State).Terminal() {
			open = append(open, e.s)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, ss := range open {
		wg.Go(func() {
			c, err := ss.Close(ctx)
			s.log.Info("session closed at shutdown", "session", ss.ID(), "undone", len(c.Undone), "left", len(c.Left), "err", err)
		})
	}
	wg.Wait()
	s.stop()
	s.sessStop()
	done := make(chan struct{})
	go func() { s.pumps.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
