package remotereg_test

import (
	"context"
	"log"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/remotereg"
)

// A console authenticates, copies the applet, launches it as a service,
// and cleans up through the journal, which also covers a crash between
// launch and stop (another process can reload the journal file and run
// the same Undo).
func ExampleLauncher_Launch() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	creds, err := adauth.Parse(`CORP\helpdesk`, "password from a prompt")
	if err != nil {
		log.Fatal(err)
	}
	g, err := (&adauth.SMBAuthenticator{}).Authenticate(ctx, "10.1.2.3", creds)
	if err != nil {
		log.Fatal(err) // an *adauth.AuthError with a Diagnosis
	}
	defer g.Close()

	j, err := deploy.OpenJournal("/var/lib/console/10.1.2.3.journal")
	if err != nil {
		log.Fatal(err)
	}
	applet, err := deploy.AppletFromFile("acme-applet.exe", "1.0", "dist/acme-applet.exe")
	if err != nil {
		log.Fatal(err)
	}
	cp, err := deploy.Copy(ctx, g, applet, deploy.CopyOptions{Journal: j})
	if err != nil {
		log.Fatal(err)
	}

	l := &remotereg.Launcher{ServicePrefix: "acme-"}
	t := &deploy.Target{Session: "s-42", Addr: "10.1.2.3", Grant: g, Journal: j}
	h, err := l.Launch(ctx, t, deploy.LaunchSpec{
		Path:      cp.LocalPath,
		Args:      []string{"-console", "10.1.2.1:8443", "-token", "one-time-token"},
		Params:    map[string]string{"Console": "10.1.2.1:8443"},
		SessionID: "s-42", Vendor: "Acme", Applet: "Helper",
	})
	if err != nil {
		log.Fatal(err) // a *deploy.LaunchError; ErrLaunchUnsupported means: try wmi
	}
	// ... the session runs ...
	if err := h.Stop(ctx); err != nil {
		log.Print(err)
	}

	undo := deploy.FileUndoers(g)
	for kind, f := range l.Undoers(g) {
		undo[kind] = f
	}
	if rep := j.Undo(ctx, undo); !rep.OK() {
		log.Print(rep.Err())
	}
}
