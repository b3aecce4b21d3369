package remotereg

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/diag"
)

func TestChangeArtifactRoundTrip(t *testing.T) {
	for _, c := range []Change{
		{Kind: ChangeService, Addr: "h", Name: "lc-1", Transport: TransportTCP},
		{Kind: ChangeService, Addr: "h", Name: "lc-2"},
		{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE\V\A\S`},
		{Kind: ChangeServiceState, Addr: "h", Name: "RemoteRegistry", StartType: StartDisabled, Transport: TransportTCP},
		{Kind: ChangeServiceState, Addr: "h", Name: "RemoteRegistry", StartType: StartDemand, WasRunning: false},
	} {
		a := c.ToArtifact()
		// Through JSON, as a journal file stores it.
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		var back deploy.Artifact
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		got, err := ChangeFromArtifact(back)
		if err != nil || got != c {
			t.Fatalf("%v -> %s -> %v, %v", c, b, got, err)
		}
	}
	bad := []deploy.Artifact{
		{Kind: deploy.KindFile, Name: "x"},
		{Kind: string(ChangeService), Addr: "h"},
		{Kind: string(ChangeServiceState), Addr: "h", Name: "RemoteRegistry", Data: json.RawMessage(`{"transport":"tcp"}`)},
		{Kind: string(ChangeService), Addr: "h", Name: "x", Data: json.RawMessage(`{"transport":"carrier-pigeon"}`)},
	}
	for _, a := range bad {
		if _, err := ChangeFromArtifact(a); err == nil {
			t.Errorf("%v accepted", a)
		}
	}
}

func TestDeployJournalAdapter(t *testing.T) {
	ctx := context.Background()
	j := &deploy.Journal{}
	rec := newJournal(j)
	c1 := Change{Kind: ChangeRegistryKey, Addr: "h", Name: `SOFTWARE\V`}
	c2 := Change{Kind: ChangeService, Addr: "h", Name: "lc-1", Transport: TransportTCP}
	if err := rec.Record(ctx, c1); err != nil {
		t.Fatal(err)
	}
	if err := rec.Record(ctx, c2); err != nil {
		t.Fatal(err)
	}
	if j.Len() != 2 {
		t.Fatalf("journal: %v", j.Artifacts())
	}
	if err := rec.Resolve(ctx, c2); err != nil || j.Len() != 1 || j.Artifacts()[0].Name != c1.Name {
		t.Fatalf("after resolve: %v %v", j.Artifacts(), err)
	}
	if err := rec.Resolve(ctx, c2); err != nil {
		t.Fatal("second resolve:", err)
	}
}

func TestUndoersSkipOtherHostsAndNeedAGrant(t *testing.T) {
	l := &Launcher{}
	a := Change{Kind: ChangeService, Addr: "other", Name: "x"}.ToArtifact()
	undo := l.Undoers(nil)["remotereg."]
	if err := undo(context.Background(), a); !errors.Is(err, deploy.ErrNoGrant) {
		t.Fatalf("nil grant: %v", err)
	}
	if _, err := l.Launch(context.Background(), &deploy.Target{}, deploy.LaunchSpec{Path: `C:\a.exe`}); !errors.Is(err, deploy.ErrNoGrant) {
		t.Fatalf("Launch with nil grant: %v", err)
	}
	if tg := targetFromGrant(nil); tg.Addr != "" || tg.Credentials != nil || tg.OpenPipe != nil {
		t.Fatal("targetFromGrant(nil)")
	}
}

func TestRefineAccessDenied(t *testing.T) {
	mk := func() error {
		return &deploy.LaunchError{Launcher: "scm", Step: "open scm", Kind: deploy.ErrAccessDenied, Diagnosis: accessDenied("x")}
	}
	err := mk()
	refineAccessDenied(err, true)
	var le *deploy.LaunchError
	errors.As(err, &le)
	if le.Diagnosis.Code != diag.UACRemote {
		t.Fatalf("local: %+v", le.Diagnosis)
	}
	err = mk()
	refineAccessDenied(err, false)
	errors.As(err, &le)
	if le.Diagnosis.Code != diag.NotAdmin {
		t.Fatalf("domain: %+v", le.Diagnosis)
	}
	other := &deploy.LaunchError{Kind: deploy.ErrTimeout, Diagnosis: diag.Diagnosis{Code: diag.EndpointTimeout}}
	refineAccessDenied(other, true)
	if other.Diagnosis.Code != "endpoint-timeout" {
		t.Fatal("changed a non-access-denied diagnosis")
	}
}
