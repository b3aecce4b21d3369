package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/lanconnect/lanconnect/deploy"
)

// A journal records what a deployment created on a target, survives the
// process that wrote it (Save, Load; OpenJournal does both with a file),
// and undoes it newest first with the undo functions the caller supplies
// for each kind. Here they only print what they would remove; a console
// uses deploy.FileUndoers and its launchers' undoers.
func ExampleJournal() {
	ctx := context.Background()
	created := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC) // Record stamps the time when it is zero
	var j deploy.Journal                                    // the zero value is an in-memory journal
	for _, a := range []deploy.Artifact{
		{Kind: deploy.KindDir, Addr: "192.0.2.10", Share: "ADMIN$", Path: `lanconnect-s1.k3x9`, Note: "applet folder"},
		{Kind: deploy.KindFile, Addr: "192.0.2.10", Share: "ADMIN$", Path: `lanconnect-s1.k3x9\acme-applet.exe`, Note: "applet"},
		{Kind: "remotereg.service", Addr: "192.0.2.10", Name: "lanconnect-s1"},
		{Kind: "acme.firewall-rule", Addr: "192.0.2.10", Name: "acme applet inbound"},
	} {
		a.Created = created
		if _, err := j.Record(ctx, a); err != nil {
			fmt.Println(err)
			return
		}
	}

	// Another process (the console after a crash, or "connect -cleanup")
	// loads what this one saved.
	var buf bytes.Buffer
	if err := j.Save(&buf); err != nil {
		fmt.Println(err)
		return
	}
	var later deploy.Journal
	if err := later.Load(&buf); err != nil {
		fmt.Println(err)
		return
	}
	for _, a := range later.Artifacts() {
		fmt.Println("recorded", a.ID, a)
	}

	undo := func(ctx context.Context, a deploy.Artifact) error {
		fmt.Println("undo", a.ID, a)
		return nil
	}
	rep := later.Undo(ctx, deploy.Undoers{
		deploy.KindFile: undo,
		deploy.KindDir:  undo,
		"remotereg.":    undo, // every kind of the remotereg namespace
		// no undo function for "acme.": that artifact is skipped
	})
	fmt.Println("undone", len(rep.Undone), "skipped", len(rep.Skipped), "ok", rep.OK())
	for _, a := range later.Artifacts() {
		fmt.Println("still recorded", a.ID, a)
	}
	// Output:
	// recorded 1 dir applet folder on 192.0.2.10: ADMIN$\lanconnect-s1.k3x9
	// recorded 2 file applet on 192.0.2.10: ADMIN$\lanconnect-s1.k3x9\acme-applet.exe
	// recorded 3 remotereg.service on 192.0.2.10: lanconnect-s1
	// recorded 4 acme.firewall-rule on 192.0.2.10: acme applet inbound
	// undo 3 remotereg.service on 192.0.2.10: lanconnect-s1
	// undo 2 file applet on 192.0.2.10: ADMIN$\lanconnect-s1.k3x9\acme-applet.exe
	// undo 1 dir applet folder on 192.0.2.10: ADMIN$\lanconnect-s1.k3x9
	// undone 3 skipped 1 ok false
	// still recorded 4 acme.firewall-rule on 192.0.2.10: acme applet inbound
}
