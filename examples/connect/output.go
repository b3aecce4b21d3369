package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/internal/cliutil"
	"github.com/lanconnect/lanconnect/session"
)

// printer writes events as text lines or NDJSON. It is safe for
// concurrent use; one event is one write.
type printer struct {
	mu      sync.Mutex
	w       io.Writer
	json    bool
	redraw  bool           // stdout is a terminal: redraw the bar in place
	lastPct map[string]int // per session, last printed progress step
	inBar   bool
	// raw prints errors with their raw chain (%+v: go-msrpc's and the
	// OS's own texts), as -v asks; otherwise errors read as the SDK
	// summarises them. NDJSON always carries the raw chain.
	raw bool
}

func newPrinter(w io.Writer, jsonOut, redraw bool) *printer {
	return &printer{w: w, json: jsonOut, redraw: redraw, lastPct: map[string]int{}}
}

// jsonEvent is one NDJSON line. The first seven fields are always present
// (empty when unknown); see docs/connect.md.
type jsonEvent struct {
	Host      string        `json:"host"`
	State     session.State `json:"state"`
	Step      session.Step  `json:"step"`
	Time      string        `json:"time"`
	Method    string        `json:"method"`
	Error     string        `json:"error"`
	Diagnosis string        `json:"diagnosis"`
	Code      string        `json:"code,omitempty"`
	Event     string        `json:"event"`
	Addr      string        `json:"addr,omitempty"`
	Session   string        `json:"session"`
	Bytes     *int64        `json:"bytes,omitempty"`
	Total     *int64        `json:"total,omitempty"`
	Account   string        `json:"account,omitempty"`
	// CredentialSource is set on Running: given, prompt, laps-legacy,
	// laps-windows or laps-windows-encrypted.
	CredentialSource string        `json:"credential_source,omitempty"`
	Transport        string        `json:"transport,omitempty"`
	Auth             string        `json:"auth,omitempty"`
	AppletPID        int           `json:"applet_pid,omitempty"`
	Arch             string        `json:"arch,omitempty"`
	AppletArch       string        `json:"applet_arch,omitempty"`
	Attempts         []jsonAttempt `json:"attempts,omitempty"`
	Notes            []string      `json:"notes,omitempty"`
	Cleanup          *jsonCleanup  `json:"cleanup,omitempty"`
}

type jsonAttempt struct {
	Method    string `json:"method"`
	Error     string `json:"error"`
	Diagnosis string `json:"diagnosis"`
}

type jsonCleanup struct {
	Kept   bool     `json:"kept,omitempty"`
	Undone []string `json:"undone"`
	Left   []string `json:"left"`
}

func toJSON(ev session.Event) jsonEvent {
	j := jsonEvent{
		Host: ev.Name, State: ev.State, Step: ev.Step, Time: ev.Time.UTC().Format(time.RFC3339Nano),
		Method: ev.Method, Diagnosis: ev.Diagnosis.String(), Code: string(ev.Diagnosis.Code), Event: string(ev.Kind), Addr: ev.Addr, Session: ev.Session,
	}
	if ev.Err != nil {
		j.Error = rawText(ev.Err)
	}
	if ev.Kind == session.EventProgress {
		d, t := ev.Done, ev.Total
		j.Bytes, j.Total = &d, &t
	}
	if r := ev.Result; r != nil {
		j.Account, j.Auth = r.Account, r.Auth
		j.Transport = r.Transport
		j.Arch, j.AppletArch = deploy.NormalizeArch(r.Arch), r.AppletArch
		if j.Arch == "" {
			j.Arch = r.Arch // as reported, when no variant can name it
		}
		if ev.State == session.Running {
			j.CredentialSource = r.CredentialSource
		}
		if r.Applet != nil {
			j.AppletPID = r.Applet.PID
		}
		if ev.State == session.Failed {
			for _, a := range r.Attempts {
				ja := jsonAttempt{Method: a.Launcher, Diagnosis: a.Diagnosis.String()}
				if a.Err != nil {
					ja.Error = rawText(a.Err)
				}
				j.Attempts = append(j.Attempts, ja)
			}
		}
		for _, n := range r.Notes {
			j.Notes = append(j.Notes, n.String())
		}
		if c := r.Cleanup; c != nil {
			jc := &jsonCleanup{Kept: c.Kept, Undone: append([]string{}, c.Undone...), Left: []string{}}
			for _, l := range c.Left {
				jc.Left = append(jc.Left, l.What+": "+errText(l.Err))
			}
			j.Cleanup = jc
		}
	}
	return j
}

// rawText is an error's raw chain: the SDK's error types print their
// causes' full texts for %+v (and read as Error for any other error).
func rawText(err error) string { return fmt.Sprintf("%+v", err) }

// errText is err as the technician reads it: summarised, or its raw
// chain with -v.
func (p *printer) errText(err error) string {
	if err == nil {
		return ""
	}
	if p.raw {
		return rawText(err)
	}
	return err.Error()
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (p *printer) event(ev session.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		b, err := json.Marshal(toJSON(ev))
		if err == nil {
			p.w.Write(append(b, '\n'))
		}
		return
	}
	if ev.Kind == session.EventProgress {
		p.bar(ev)
		return
	}
	if p.inBar {
		fmt.Fprintln(p.w)
		p.inBar = false
	}
	ts := ev.Time.Format("15:04:05.000")
	// Host names, errors, diagnoses and notes carry text that hosts on the
	// network chose: every such value goes through safe before it is
	// printed, so that no control character (an ANSI escape, a CR or LF
	// forging a line) reaches the terminal.
	host := cliutil.Safe(ev.Name)
	switch ev.Kind {
	case session.EventRefused:
		fmt.Fprintf(p.w, "%s  %-16s %v\n", ts, ev.Name, ev.Err)
		return
	case session.EventAttempt:
		fmt.Fprintf(p.w, "%s  %-16s launch via %s failed: %s\n", ts, host, safe(ev.Method), safe(p.errText(ev.Err)))
		if !ev.Diagnosis.IsZero() {
			fmt.Fprintf(p.w, "%s  %-16s   diagnosis: %s\n", ts, host, safe(ev.Diagnosis))
		}
		return
	}
	line := fmt.Sprintf("%s  %-16s %-10s  %-12s", ts, host, ev.State, ev.Step)
	if ev.Method != "" {
		line += "  via " + safe(ev.Method)
	}
	r := ev.Result
	switch ev.State {
	case session.Running:
		if r != nil && r.Applet != nil {
			line += fmt.Sprintf("  applet pid %d on %s checked in", r.Applet.PID, safe(r.Applet.Name))
		}
		// Said only when it is not the usual: SMB over 139, a variant.
		if r != nil && r.Transport == "nbt139" {
			line += "  (SMB over TCP 139)"
		}
		if r != nil && r.AppletArch != "" && r.AppletArch != deploy.ArchDefault {
			line += "  (" + safe(r.AppletArch) + " applet)"
		}
	case session.Failed:
		line += "\n    error: " + safe(p.errText(ev.Err))
		if !ev.Diagnosis.IsZero() {
			line += "\n    diagnosis: " + safe(ev.Diagnosis)
		}
		if r != nil {
			for _, a := range r.Attempts {
				// The error names its launcher already when the
				// launcher's name is the method's: say it once.
				text := p.errText(a.Err)
				if !strings.HasPrefix(text, a.Launcher+": ") {
					text = a.Launcher + ": " + text
				}
				line += "\n    tried " + safe(text)
			}
		}
	}
	if r != nil && ev.State != session.Running {
		for _, n := range r.Notes {
			line += "\n    note: " + safe(n)
		}
		if c := r.Cleanup; c != nil {
			switch {
			case c.Kept:
				line += "\n    cleanup: skipped (kept)"
			case len(c.Left) == 0:
				line += fmt.Sprintf("\n    cleanup: %d undone, nothing left", len(c.Undone))
			default:
				var left []string
				for _, l := range c.Left {
					left = append(left, safe(l.What)+" ("+safe(errText(l.Err))+")")
				}
				line += fmt.Sprintf("\n    cleanup: %d undone, LEFT ON TARGET: %s", len(c.Undone), strings.Join(left, "; "))
			}
		}
	}
	fmt.Fprintln(p.w, line)
}

// safe formats v as %v does and makes it safe for a terminal
// (cliutil.Safe).
func safe(v any) string { return cliutil.Safe(fmt.Sprint(v)) }

// bar draws the copy's progress: redrawn in place on a terminal, and one
// line per quarter otherwise.
func (p *printer) bar(ev session.Event) {
	if ev.Total <= 0 {
		return
	}
	pct := int(ev.Done * 100 / ev.Total)
	const width = 30
	fill := pct * width / 100
	s := fmt.Sprintf("%-16s copy [%s%s] %3d%% %s / %s", cliutil.Safe(ev.Name), strings.Repeat("#", fill), strings.Repeat("-", width-fill), pct, size(ev.Done), size(ev.Total))
	if p.redraw {
		fmt.Fprintf(p.w, "\r%s", s)
		p.inBar = true
		return
	}
	q := pct / 25
	if last, ok := p.lastPct[ev.Session]; ok && last >= q {
		return
	}
	p.lastPct[ev.Session] = q
	fmt.Fprintf(p.w, "%s  %s\n", ev.Time.Format("15:04:05.000"), s)
}

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
