package sessiontest_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/session/sessiontest"
)

// A console's test connects to a fake computer: the session goes through
// authentication, the copy, the launch and the applet's check-in (over
// loopback, with the real check-in server) to Running, and its cleanup
// removes every file it deployed.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pc := &sessiontest.Computer{
		Name: "PC1", Domain: "WORKGROUP", Addr: netip.MustParseAddr("127.0.2.10"),
		Accounts: map[string]sessiontest.Account{"admin": {Password: "secret", Admin: true}},
	}
	network := sessiontest.NewNetwork(pc)
	defer network.Close()

	var cfg session.Config
	network.Apply(&cfg)
	cfg.Credentials, _ = adauth.Parse(`PC1\admin`, "secret")
	c, err := session.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	s := c.Connect(ctx, pc.Host())
	r, err := s.Wait(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.State, r.Method, r.Account)
	cl, err := s.Close(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("clean:", cl.Clean(), "files left:", len(pc.Files()), "applets:", pc.Applets())
	// Output:
	// Running sessiontest PC1\admin
	// clean: true files left: 0 applets: 0
}
