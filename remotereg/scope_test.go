package remotereg

import (
	"errors"
	"testing"

	"github.com/lanconnect/lanconnect/deploy"
)

func TestScope(t *testing.T) {
	l := &Launcher{}
	s := l.Scope("", "LanConnect", "ExampleApplet")
	in := []Change{
		{Kind: ChangeService, Addr: "h", Name: "lanconnect-0a1b2c3d", Transport: TransportPipe},
		{Kind: ChangeServiceState, Addr: "h", Name: "RemoteRegistry", StartType: StartDisabled},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE\LanConnect`},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE\LanConnect\ExampleApplet`},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `software\lanconnect\exampleapplet\s0123456789abcdef`},
	}
	var arts []deploy.Artifact
	for _, c := range in {
		arts = append(arts, c.ToArtifact())
	}
	if err := s.Check(arts); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Change{
		{Kind: ChangeService, Addr: "h", Name: "Spooler"},
		{Kind: ChangeService, Addr: "h", Name: "lanconnect-0a1b2c3"},
		{Kind: ChangeService, Addr: "h", Name: "lanconnect-0a1b2c3g"},
		{Kind: ChangeService, Addr: "h", Name: "other-0a1b2c3d"},
		{Kind: ChangeServiceState, Addr: "h", Name: "WinDefend", StartType: StartAuto},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SYSTEM\CurrentControlSet\Services\WinDefend`},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE`},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE\Microsoft`},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE\LanConnect\Other`},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE\LanConnect\ExampleApplet\s1\deeper`},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE\LanConnect\ExampleApplet\`},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE\LanConnect\ExampleApplet\..`},
	} {
		if err := s.Check([]deploy.Artifact{c.ToArtifact()}); !errors.Is(err, deploy.ErrOutOfScope) {
			t.Errorf("%v: %v", c, err)
		}
	}
	// A malformed artifact is out of scope too.
	if err := s.Check([]deploy.Artifact{{Kind: string(ChangeService), Addr: "h", Name: "lanconnect-0a1b2c3d"}}); !errors.Is(err, deploy.ErrOutOfScope) {
		t.Errorf("no data: %v", err)
	}
	// The configured prefix wins; without vendor and applet no key is ours.
	s = (&Launcher{ServicePrefix: "acme_"}).Scope("", "", "")
	if err := s.Check([]deploy.Artifact{(Change{Kind: ChangeService, Addr: "h", Name: "acme_0a1b2c3d"}).ToArtifact()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Change{
		{Kind: ChangeService, Addr: "h", Name: "lanconnect-0a1b2c3d"},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE\LanConnect`},
	} {
		if err := s.Check([]deploy.Artifact{c.ToArtifact()}); !errors.Is(err, deploy.ErrOutOfScope) {
			t.Errorf("%v: %v", c, err)
		}
	}
	if err := l.Scope("acme-", "", "").Check([]deploy.Artifact{(Change{Kind: ChangeService, Addr: "h", Name: "acme-0a1b2c3d"}).ToArtifact()}); err != nil {
		t.Fatal(err)
	}
}
