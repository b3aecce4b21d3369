package deploy

import "context"

// Remote Registry states of Probe.RemoteRegistry.
const (
	ServiceRunning  = "running"
	ServiceStopped  = "stopped"
	ServiceDisabled = "disabled" // stopped, and its start type is disabled
)

// Probe is what a Checker learned about a target without changing it.
// Zero fields are unknown.
type Probe struct {
	// RemoteRegistry is the Remote Registry service's state as the
	// Service Control Manager reports it: ServiceRunning, ServiceStopped
	// or ServiceDisabled; empty when not queried.
	RemoteRegistry string `json:"remote_registry,omitempty"`
	// Settings are the registry values a Checker read (ForceGuest,
	// LmCompatibilityLevel, LocalAccountTokenFilterPolicy, Arch); nil
	// when it read none, for example because Remote Registry is stopped
	// and a check must not start it.
	Settings *Preflight `json:"settings,omitempty"`
	// Port is the dynamic TCP port a launcher reached (WMI's, named by
	// the endpoint mapper's activation); 0 when none.
	Port int `json:"port,omitempty"`
}

// Checker is implemented by launchers that can tell, without launching
// anything and without changing anything on the target, whether they
// would work there: a Check opens no file for writing, creates no
// service, starts or stops none, writes no registry value and does not
// even open an interface (such as \pipe\winreg) whose opening starts a
// stopped service. It returns what it learned and, when the launcher
// would fail, a *LaunchError whose Kind and Diagnosis are those its
// Launch would give for the same cause. It records nothing in
// t.Journal (which is nil during a check). session.Client.Check asks
// every configured launcher that implements it.
type Checker interface {
	Check(ctx context.Context, t *Target) (*Probe, error)
}
