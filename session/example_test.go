package session_test

import (
	"context"
	"fmt"
	"log"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/standard"
)

// A console connects to the first host its filter shows, printing each
// state. The console sets what is its own (here discoverers and
// credentials; a prompt and the check-in address too, in a real console);
// package standard fills in lanconnect's authenticator, preflight, copy,
// launchers and journals.
func Example() {
	ctx := context.Background()
	creds, _ := adauth.Parse(`CORP\helpdesk`, "from the console's vault")
	cfg := session.Config{Discoverers: []discovery.Discoverer{ /* netbios, adauth.Directory */ }, Credentials: creds}
	applet, err := deploy.AppletFromFile("acme-applet.exe", "1.0", "dist/acme-applet.exe")
	if err != nil {
		log.Fatal(err)
	}
	if err := standard.Apply(&cfg, standard.Options{Applet: applet, Method: standard.MethodAuto}); err != nil {
		log.Fatal(err) // a *standard.OptionError names the field
	}
	c, err := session.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	ev := <-c.Hosts(ctx, discovery.MustParseFilter("pc-*")).Events() // the first host shown
	s := c.Connect(ctx, ev.Host)
	for e := range s.Events() { // closed after Failed or Closed
		fmt.Println(e.Time.Format("15:04:05"), e.State, e.Step, e.Diagnosis)
		if e.State == session.Running {
			s.Close(ctx)
		}
	}
}
