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
)

var _ deploy.Launcher = (*Launcher)(nil)

// TargetFromGrant returns the Target of a grant: its host, its
// credentials, its session's named pipes, and the computer's identity
// from the grant's logon (Target.ExpectName).
func TargetFromGrant(g *adauth.Grant) Target {
	if g == nil {
		return Target{}
	}
	t := Target{Host: g.Host, Credentials: g.Credentials, ExpectName: g.Identity()}
	if g.Session() != nil {
		t.OpenPipe = g.OpenPipe
	}
	return t
}

// Launch implements deploy.Launcher: LaunchTarget on the grant's target,
// recording changes in j (which may be nil). An access-denied failure is
// diagnosed as UAC remote restrictions when the grant's account is local
// to the computer, and as a missing administrator right otherwise.
func (l *Launcher) Launch(ctx context.Context, g *adauth.Grant, spec deploy.LaunchSpec, j *deploy.Journal) (deploy.Handle, error) {
	if g == nil || g.Session() == nil {
		return nil, &deploy.LaunchError{Launcher: l.Name(), Step: "validate", Err: deploy.ErrNoGrant}
	}
	var rec Journal
	if j != nil {
		rec = NewJournal(j)
	}
	h, err := l.LaunchTarget(ctx, TargetFromGrant(g), spec, rec)
	if err != nil {
		refineAccessDenied(err, g.Facts.LocalAccount)
		return nil, err
	}
	return h, nil
}

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

// NewJournal adapts a deploy.Journal to the Journal remotereg records
// in: each Change becomes an Artifact of the same kind ("remotereg.*"),
// with the service state in Data. The adapter remembers the artifact IDs
// of the changes it recorded, so Resolve finds them.
func NewJournal(j *deploy.Journal) Journal {
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
	a := deploy.Artifact{Kind: string(c.Kind), Host: c.Host, Name: c.Name}
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
	c := Change{Kind: ChangeKind(a.Kind), Host: a.Host, Name: a.Name}
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

// Undoers returns deploy.Journal undo functions for remotereg's
// artifacts, acting on g's target. Artifacts of other hosts are skipped
// (deploy.ErrNotMine).
func (l *Launcher) Undoers(g *adauth.Grant) deploy.Undoers {
	return deploy.Undoers{"remotereg.": func(ctx context.Context, a deploy.Artifact) error {
		if g == nil || g.Session() == nil {
			return deploy.ErrNoGrant
		}
		if !strings.EqualFold(a.Host, g.Host) {
			return deploy.ErrNotMine
		}
		c, err := ChangeFromArtifact(a)
		if err != nil {
			return err
		}
		return l.Undo(ctx, TargetFromGrant(g), c)
	}}
}

// Scope returns the checks of remotereg's artifacts for deploy's
// Journal.UndoWithin: services named servicePrefix (empty means
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
