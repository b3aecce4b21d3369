package testlab

import (
	"context"
	"testing"
)

// TestUsage: a lab's usage counts the daemons in its namespaces with
// their memory, and nothing once the lab is closed.
func TestUsage(t *testing.T) {
	if testing.Short() {
		t.Skip("lab test")
	}
	l := New(t, Options{Targets: []TargetSpec{{}, {NoSMB: true}}})
	ctx := context.Background()
	u := l.Usage(ctx)
	if u.ByComm["smbd"] < 1 || u.ByComm["nmbd"] != 2 || u.Procs < 3 || u.PSS <= 0 || u.RSS < u.PSS || u.CPU <= 0 {
		t.Fatalf("usage of a lab with smbd and 2 nmbd: %+v", u)
	}
	t.Logf("usage: %s, CPU %v", u, u.CPU)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if u := l.Usage(ctx); u.Procs != 0 {
		t.Fatalf("usage of a closed lab: %+v", u)
	}
}
