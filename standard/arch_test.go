package standard_test

import (
	"context"
	"errors"
	"testing"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/standard"
)

func TestApplyApplets(t *testing.T) {
	a64, x86 := applet, applet
	a64.Arch, x86.Arch = deploy.ArchAMD64, deploy.Arch386
	var cfg session.Config
	if err := standard.Apply(&cfg, standard.Options{Applets: deploy.Applets{a64, x86}}); err != nil {
		t.Fatal(err)
	}
	vd, ok := cfg.Deployer.(deploy.VariantDeployer)
	if !ok || len(vd.Variants()) != 2 || !vd.Variants().NeedsArch() {
		t.Fatalf("deployer %#v", cfg.Deployer)
	}
	// Deploy refuses before copying (no grant is touched) when no
	// variant fits.
	_, err := vd.Deploy(context.Background(), &deploy.Target{Session: "s1", Arch: "ARM 32-bit"}, func(int64, int64) {})
	if !errors.Is(err, deploy.ErrNoAppletForArch) {
		t.Fatalf("Deploy on 32-bit ARM: %v", err)
	}

	var oe *standard.OptionError
	err = standard.Apply(&session.Config{}, standard.Options{Applets: deploy.Applets{a64, a64}})
	if !errors.As(err, &oe) || oe.Field != "Applets" || !errors.Is(err, deploy.ErrBadApplet) {
		t.Fatalf("two amd64 variants: %v", err)
	}
}

func TestDeployerSingleAppletIsDefault(t *testing.T) {
	a := applet
	a.Arch = deploy.ArchARM64 // ignored without Applets: one build is copied whatever
	v := standard.Deployer{Applet: a}.Variants()
	if len(v) != 1 || v.NeedsArch() {
		t.Fatalf("variants %v", v.Archs())
	}
	if got, err := v.Choose("x86"); err != nil || got.Label() != deploy.ArchDefault {
		t.Fatalf("%v %v", got.Label(), err)
	}
}
