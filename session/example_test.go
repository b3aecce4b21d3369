package session_test

import (
	"context"
	"fmt"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
)

// A console connects to the first host its filter shows, printing each
// state. Deployer, Launchers, Preflight and NewJournal come from package
// deploy and the launcher packages; examples/connect wires them all.
func Example() {
	ctx := context.Background()
	creds, _ := adauth.Parse(`CORP\helpdesk`, "from the console's vault")
	c, _ := session.New(session.Config{Discoverers: []discovery.Discoverer{ /* netbios, adauth.Directory */ },
		Authenticator: &adauth.SMBAuthenticator{}, Credentials: creds /* , Deployer, Launchers, ... */})
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
