package deploy

import (
	"context"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/discovery"
)

// Target is one session's target as the session hands it to its steps
// (Preflighter, Deployer, Launcher, session.Readiness): who the computer
// is, the grant that authentication returned, the session's journal and,
// once deployed, the applet's path there.
//
// A step reads it and records in Journal what it creates; it does not
// keep it past the session, and does not close the Grant (the session
// owns both).
type Target struct {
	// Session is the session's ID; it names the applet's folder, files
	// and registry key.
	Session string
	// Host is the computer as discovery found it (or as the caller named
	// it).
	Host discovery.Host
	// Addr is the address (or name) the session connected to.
	Addr string
	// Grant is the proved administrator session on the computer.
	Grant *adauth.Grant
	// Journal is the session's journal: steps record in it everything
	// they create or change on the computer, before they rely on it, so
	// that the session's cleanup (or a later recovery from the persisted
	// file) undoes it with the Undoers of the step that recorded it. Nil
	// means record nothing; every step must accept that.
	Journal *Journal
	// Arch is the computer's processor architecture as the session
	// learned it before deploying, as the computer reported it
	// (PROCESSOR_ARCHITECTURE from Remote Registry: "AMD64", "x86",
	// "ARM64"; or Win32_OperatingSystem.OSArchitecture from WMI); empty
	// when unknown or not needed. Applets.Choose reads it.
	Arch string
	// AppletPath is the applet's local path on the computer once the
	// Deployer has copied it, for example
	// `C:\Windows\lanconnect-s1.0a1b2c3d\applet-s1.exe`; empty before.
	AppletPath string
}

// Undoer is implemented by the launchers, preflighters and deployers that
// record artifacts of their own kinds in a Target's Journal: Undoers
// returns the undo functions for those kinds, acting through g's session.
// The session undoes its journal with the Undoers of every step it was
// configured with that implements Undoer, together with FileUndoers; a
// console recovering a persisted journal after a crash does the same with
// a grant of its own.
//
// The functions must return nil for an artifact that is already gone, and
// ErrNotMine for one of another computer (compare Artifact.Addr with
// g.Addr). They must not trust an artifact more than the journal file it
// came from: a recovered journal is read from disk.
type Undoer interface {
	Undoers(g *adauth.Grant) Undoers
}

// Preflight is what a Preflighter learned about a target's settings
// before anything was changed. Empty strings and nil numbers are unknown
// (the value is missing, as on many systems), not errors.
type Preflight struct {
	// Product is the product name, for example "Windows 11 Pro".
	Product string `json:"product,omitempty"`
	// Version is the display version (for example "24H2"), else the
	// release or kernel version (for example "6.3" or "10.0.26100").
	Version string `json:"version,omitempty"`
	// Build is the build number, with ".UBR" when the update build
	// revision is known.
	Build string `json:"build,omitempty"`
	// Arch is the processor architecture, for example "AMD64" or "ARM64"
	// (from the registry) or "64-bit" (from WMI).
	Arch string `json:"arch,omitempty"`
	// SystemRoot is the Windows directory, for example `C:\Windows`.
	SystemRoot string `json:"system_root,omitempty"`
	// ForceGuest 1 is the guest-only sharing model (every network logon
	// becomes Guest).
	ForceGuest *uint32 `json:"force_guest,omitempty"`
	// LmCompatibilityLevel is the NTLM level (0-5).
	LmCompatibilityLevel *uint32 `json:"lm_compatibility_level,omitempty"`
	// LocalAccountTokenFilterPolicy 1 lets local administrators keep
	// their rights over the network (no UAC remote restrictions).
	LocalAccountTokenFilterPolicy *uint32 `json:"local_account_token_filter_policy,omitempty"`
	// RemoteRegistryOff reports that Remote Registry was stopped and
	// could not be used.
	RemoteRegistryOff bool `json:"remote_registry_off,omitempty"`
	// Unknown lists the values that were missing, as `key\value` paths
	// (registry) or `Class\Property` (WMI).
	Unknown []string `json:"unknown,omitempty"`
}

// Preflighter reads a target's settings before anything is changed. A
// failure is a note for the technician, not the end of the session: the
// launchers may still work. It may return findings together with an
// error (RemoteRegistryOff, for example). What it changes to read them
// (a service it starts) it records in t.Journal.
type Preflighter interface {
	Preflight(ctx context.Context, t *Target) (*Preflight, error)
}

// Deployer copies the applet to the target and returns its local path
// there (for example `C:\Windows\lanconnect-s1.0a1b2c3d\applet-s1.exe`). It
// records what it created in t.Journal and reports progress (bytes) as it
// copies. It does not launch anything.
type Deployer interface {
	Deploy(ctx context.Context, t *Target, progress func(done, total int64)) (path string, err error)
}

// VariantDeployer is a Deployer whose applet comes in variants per
// architecture: Deploy copies Variants().Choose(t.Arch). Before calling
// Deploy, the session learns the target's architecture when the variants
// need it (Applets.NeedsArch: from the preflight's Arch, else from the
// Preflight of a launcher such as WMI), sets Target.Arch, and fails the
// step without calling Deploy when no variant fits (*ArchError).
type VariantDeployer interface {
	Deployer
	Variants() Applets
}

// FileDeployer is a Deployer that can also put a small file next to the
// applet. The session uses it for the check-in ticket, which must not
// travel on the applet's command line (local users of the target can read
// command lines and service ImagePaths). A session that uses the check-in
// (no session.Config.Readiness) needs a Deployer that implements it.
type FileDeployer interface {
	Deployer
	// DeployFile writes content as the file name in the directory of
	// t.AppletPath over the grant's session, records it in t.Journal so
	// that cleanup removes it, and returns its local path. The content
	// is secret: it is never logged. It replaces a file of that name.
	DeployFile(ctx context.Context, t *Target, name string, content []byte) (path string, err error)
}
