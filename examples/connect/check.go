package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

// runCheck runs connect -check: session.Client.Check on every host, at
// most concurrency at once, printing each report as it is done. It
// changes nothing on any host. It returns exitOK when every host is
// ready.
func runCheck(ctx context.Context, client *session.Client, hosts []discovery.Host, concurrency int, out *checkPrinter) int {
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ready := 0
	for _, h := range hosts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := client.Check(ctx, h)
			out.report(r)
			if r.Ready {
				mu.Lock()
				ready++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	out.summary(ready, len(hosts))
	if ready == len(hosts) && ctx.Err() == nil {
		return exitOK
	}
	return exitFailed
}

// checkPrinter writes check reports as text blocks or NDJSON, one write
// per report.
type checkPrinter struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

// jsonCheckItem is one item of a "check" NDJSON object.
type jsonCheckItem struct {
	Status    session.CheckStatus `json:"status"`
	Value     string              `json:"value"`
	Code      string              `json:"code,omitempty"`
	Diagnosis string              `json:"diagnosis,omitempty"`
	// SMB only.
	Dialect   string `json:"dialect,omitempty"`
	Transport string `json:"transport,omitempty"`
	Signed    *bool  `json:"signed,omitempty"`
	Encrypted *bool  `json:"encrypted,omitempty"`
	// WMI only: the dynamic port.
	Port int `json:"port,omitempty"`
}

func checkItemJSON(it session.CheckItem) *jsonCheckItem {
	return &jsonCheckItem{Status: it.Status, Value: it.Value, Code: string(it.Diagnosis.Code), Diagnosis: it.Diagnosis.String()}
}

// checkJSON is the NDJSON object of one host's check; see
// docs/connect.md.
func checkJSON(r *session.CheckReport) map[string]any {
	method := ""
	if r.Launch.Status == session.CheckOK {
		method = r.Launch.Value
	}
	// The seven fields every connect NDJSON object has, then the check's.
	m := map[string]any{
		"host": r.Name, "state": "", "step": "", "time": time.Now().UTC().Format(time.RFC3339Nano),
		"method": method, "error": "", "diagnosis": r.Diagnosis.String(), "code": string(r.Diagnosis.Code),
		"event": "check", "addr": r.Addr, "account": r.Account, "auth": r.Auth, "ready": r.Ready,
		"took_ms": r.Took.Milliseconds(),
	}
	for _, n := range r.Items() {
		j := checkItemJSON(n.Item)
		switch n.Name {
		case "smb":
			if r.Dialect != "" {
				j.Dialect, j.Transport = r.Dialect, r.Transport
				signed, enc := r.Signed, r.Encrypted
				j.Signed, j.Encrypted = &signed, &enc
			}
		case "wmi":
			j.Port = r.WMIPort
		}
		m[n.Name] = j
	}
	return m
}

func (p *checkPrinter) report(r *session.CheckReport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		b, err := json.Marshal(checkJSON(r))
		if err == nil {
			p.w.Write(append(b, '\n'))
		}
		return
	}
	var b strings.Builder
	verdict := "READY"
	if !r.Ready {
		verdict = "NOT READY"
	}
	addr := r.Addr
	if addr == "" {
		addr = "no address"
	}
	fmt.Fprintf(&b, "%s (%s): %s\n", safe(r.Name), safe(addr), verdict)
	var said []diag.Diagnosis
	for _, n := range r.Items() {
		v := n.Item.Value
		switch n.Name {
		case "smb":
			if r.Dialect != "" {
				v = r.Dialect + " over " + r.Transport
				v += map[bool]string{true: ", signed", false: ", not signed"}[r.Signed]
				v += map[bool]string{true: ", encrypted", false: ", not encrypted"}[r.Encrypted]
			}
		case "credentials":
			if r.Account != "" && n.Item.Status == session.CheckOK {
				v += " (" + r.Account
				if r.Auth != "" {
					v += ", " + r.Auth
				}
				v += ")"
			}
		case "wmi":
			if r.WMIPort != 0 {
				v += fmt.Sprintf(" (dynamic port %d)", r.WMIPort)
			}
		}
		fmt.Fprintf(&b, "  %-16s %-7s %s\n", n.Name, n.Item.Status, safe(v))
		// Each diagnosis once, under the first item it explains.
		if d := n.Item.Diagnosis; !d.IsZero() && !slices.Contains(said, d) {
			said = append(said, d)
			fmt.Fprintf(&b, "  %-16s         %s: %s\n", "", d.Code, safe(d))
		}
	}
	fmt.Fprint(p.w, b.String())
}

func (p *checkPrinter) summary(ready, total int) {
	if p.json {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%d of %d hosts ready to connect (nothing was changed on them)\n", ready, total)
}
