package remotereg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
	"github.com/lanconnect/lanconnect/internal/grantsess"
)

var _ deploy.Launcher = (*Launcher)(nil)

// targetFromGrant returns the target of a grant: its address, its
// credentials, its session's named pipes, and the computer's identity
// from the grant's logon (target.ExpectName).
func targetFromGrant(g *adauth.Grant) target {
	if g == nil {
		return target{}
	}
	t := target{Addr: g.Addr, Credentials: g.Credentials, ExpectName: g.Identity(), Kerberos: grantsess.Kerberos(g)}
	if grantsess.Of(g) != nil {
		t.OpenPipe = g.OpenPipe
	}
	return t
}

// journalOf returns the remotereg journal that records into t.Journal,
// or nil when t has none.
func journalOf(t *deploy.Target) journal {
	if t == nil || t.Journal == nil {
		return nil
	}
	return newJournal(t.Journal)
}

// Launch implements deploy.Launcher: it launches spec on t.Grant's
// computer and records every change in t.Journal (nothing when it is
// nil) as artifacts of kinds "remotereg.*", which Undoers undoes. An
// access-denied failure is diagnosed as UAC remote restrictions when the
// grant's account is local to the computer, and as a missing
// administrator right otherwise. A grant without an SMB session (one a
// caller built from an address and credentials) has no pipe transport:
// only TransportTCP can work then.
func (l *Launcher) Launch(ctx context.Context, t *deploy.Target, spec deploy.LaunchSpec) (deploy.Handle, error) {
	if t == nil || t.Grant == nil {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: "validate", Err: deploy.ErrNoGrant}
	}
	h, err := l.launchTarget(ctx, targetFromGrant(t.Grant), spec, journalOf(t))
	if err != nil {
		refineAccessDenied(err, t.Grant.Facts.LocalAccount)
		return nil, err
	}
	return h, nil
}

// Preflight implements deploy.Preflighter: it reads t's OS and security
// settings through Remote Registry , starting
// that service through the SCM if needed and recording the change in
// t.Journal. When Remote Registry cannot be reached it returns the error
// with RemoteRegistryOff set, for the session's diagnosis. It changes
// nothing else.
func (l *Launcher) Preflight(ctx context.Context, t *deploy.Target) (*deploy.Preflight, error) {
	if t == nil || t.Grant == nil {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: "preflight", Err: deploy.ErrNoGrant}
	}
	p, err := l.preflight(ctx, targetFromGrant(t.Grant), journalOf(t))
	if err != nil {
		off := errors.Is(err, deploy.ErrUnreachable) || errors.Is(err, deploy.ErrLaunchUnsupported)
		return &deploy.Preflight{RemoteRegistryOff: off}, err
	}
	return p, nil
}

var (
	_ deploy.Preflighter = (*Launcher)(nil)
	_ deploy.Undoer      = (*Launcher)(nil)
)

// refineAccessDenied picks between the two access-denied diagnoses with
// what the grant knows about the account.
func refineAccessDenied(err error, local bool) {
	var le *deploy.LaunchError
	if !errors.As(err, &le) || !errors.Is(le.Kind, deploy.ErrAccessDenied) {
		return
	}
	if local {
		le.Diagnosis = diag.Diagnosis{
			Code: diag.UACRemote,
			Summary: "The computer refused " + le.Step + " for a local administrator account: " +
				"UAC remote restrictions remove administrator rights from local accounts over the network.",
			Fix: "Use a domain administrator or the built-in Administrator account, or set " +
				`HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\LocalAccountTokenFilterPolicy = 1 (DWORD) on the computer.`,
		}
		return
	}
	le.Diagnosis = diag.Diagnosis{
		Code:    diag.NotAdmin,
		Summary: "The computer refused " + le.Step + ": the account is not an administrator there.",
		Fix:     "Use an account in the computer's Administrators group (for example a domain administrator).",
	}
}

// newJournal adapts a deploy.Journal to the journal remotereg records
// in: each Change becomes an Artifact of the same kind ("remotereg.*"),
// with the service state in Data. The adapter remembers the artifact IDs
// of the changes it recorded, so Resolve finds them.
func newJournal(j *deploy.Journal) journal {
	return &deployJournal{j: j, ids: map[Change]uint64{}}
}

type deployJournal struct {
	j   *deploy.Journal
	mu  sync.Mutex
	ids map[Change]uint64
}

// serviceData is the Data of a service artifact.
type serviceData struct {
	Transport  Transport  `json:"transport"`
	StartType  *StartType `json:"start_type,omitempty"`  // service-state only
	WasRunning *bool      `json:"was_running,omitempty"` // service-state only
}

// ToArtifact converts a Change to the deploy.Artifact that records it.
func (c Change) ToArtifact() deploy.Artifact {
	a := deploy.Artifact{Kind: string(c.Kind), Addr: c.Addr, Name: c.Name}
	switch c.Kind {
	case ChangeService:
		a.Note = "applet service"
		a.Data, _ = json.Marshal(serviceData{Transport: c.Transport})
	case ChangeRegistryKey:
		a.Note = `applet parameters key under HKLM`
	case ChangeServiceState:
		a.Note = "service started by remotereg"
		st, was := c.StartType, c.WasRunning
		a.Data, _ = json.Marshal(serviceData{Transport: c.Transport, StartType: &st, WasRunning: &was})
	}
	return a
}

// ChangeFromArtifact converts a recorded artifact back to a Change. It
// fails for kinds that remotereg does not record.
func ChangeFromArtifact(a deploy.Artifact) (Change, error) {
	c := Change{Kind: ChangeKind(a.Kind), Addr: a.Addr, Name: a.Name}
	switch c.Kind {
	case ChangeRegistryKey:
	case ChangeService, ChangeServiceState:
		var d serviceData
		if err := json.Unmarshal(a.Data, &d); err != nil {
			return Change{}, fmt.Errorf("remotereg: artifact %d: %w", a.ID, err)
		}
		c.Transport = d.Transport
		if c.Kind == ChangeServiceState {
			if d.StartType == nil || d.WasRunning == nil {
				return Change{}, fmt.Errorf("remotereg: artifact %d lacks the original service state", a.ID)
			}
			c.StartType, c.WasRunning = *d.StartType, *d.WasRunning
		}
	default:
		return Change{}, fmt.Errorf("remotereg: artifact kind %q is not remotereg's", a.Kind)
	}
	if c.Name == "" {
		return Change{}, fmt.Errorf("remotereg: artifact %d has no name", a.ID)
	}
	return c, nil
}

func (d *deployJournal) Record(ctx context.Context, c Change) error {
	a, err := d.j.Record(ctx, c.ToArtifact())
	d.mu.Lock()
	d.ids[c] = a.ID // recorded in memory even when persisting failed
	d.mu.Unlock()
	return err
}

func (d *deployJournal) Resolve(ctx context.Context, c Change) error {
	d.mu.Lock()
	id, ok := d.ids[c]
	delete(d.ids, c)
	d.mu.Unlock()
	if !ok {
		return nil
	}
	return d.j.Resolve(ctx, id)
}

// Undoers implements deploy.Undoer: it returns the undo functions for
// remotereg's artifacts ("remotereg." kinds), acting on g's computer.
// Artifacts of other computers are skipped (deploy.ErrNotMine).
func (l *Launcher) Undoers(g *adauth.Grant) deploy.Undoers {
	return deploy.Undoers{"remotereg.": func(ctx context.Context, a deploy.Artifact) error {
		if g == nil || grantsess.Of(g) == nil {
			return deploy.ErrNoGrant
		}
		if !strings.EqualFold(a.Addr, g.Addr) {
			return deploy.ErrNotMine
		}
		c, err := ChangeFromArtifact(a)
		if err != nil {
			return err
		}
		return l.undo(ctx, targetFromGrant(g), c)
	}}
}

// Scope returns the checks of remotereg's artifacts for deploy's
// journal.UndoWithin: services named servicePrefix (empty means
// l.ServicePrefix, else DefaultServicePrefix) followed by the 8 hex digits
// remotereg adds; the parameter key's levels SOFTWARE\<vendor>,
// SOFTWARE\<vendor>\<applet> and one session key below it (none when
// vendor or applet is empty); and the start-state change of the
// RemoteRegistry service only. Anything else, a malformed artifact
// included, is out of scope. It does not touch the target.
func (l *Launcher) Scope(servicePrefix, vendor, applet string) deploy.Scope {
	prefix := servicePrefix
	if prefix == "" {
		prefix = l.ServicePrefix
	}
	if prefix == "" {
		prefix = DefaultServicePrefix
	}
	return deploy.Scope{"remotereg.": func(a deploy.Artifact) error {
		c, err := ChangeFromArtifact(a)
		if err != nil {
			return err
		}
		switch c.Kind {
		case ChangeService:
			if !serviceInScope(c.Name, prefix) {
				return fmt.Errorf("service %q is not %s followed by 8 hex digits", c.Name, prefix)
			}
		case ChangeServiceState:
			if !strings.EqualFold(c.Name, remoteRegistryService) {
				return fmt.Errorf("remotereg changes the state of %s only, not of %q", remoteRegistryService, c.Name)
			}
		case ChangeRegistryKey:
			if !keyInScope(c.Name, vendor, applet) {
				return fmt.Errorf(`key HKLM\%s is not under the parameter key's root HKLM\SOFTWARE\%s\%s`, c.Name, vendor, applet)
			}
		}
		return nil
	}}
}

func serviceInScope(name, prefix string) bool {
	if len(name) != len(prefix)+8 || !strings.EqualFold(name[:len(prefix)], prefix) {
		return false
	}
	for _, r := range name[len(prefix):] {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// keyInScope reports whether path is one of the keys writeParams may
// create for vendor and applet.
func keyInScope(path, vendor, applet string) bool {
	if vendor == "" || applet == "" {
		return false
	}
	parts := strings.Split(path, `\`)
	if len(parts) < 2 || len(parts) > 4 || !strings.EqualFold(parts[0], "SOFTWARE") || !strings.EqualFold(parts[1], vendor) {
		return false
	}
	if len(parts) >= 3 && !strings.EqualFold(parts[2], applet) {
		return false
	}
	if len(parts) == 4 {
		spec := deploy.LaunchSpec{Path: `C:\x.exe`, Params: map[string]string{"x": ""}, SessionID: parts[3], Vendor: vendor, Applet: applet}
		return spec.Validate() == nil
	}
	return true
}
