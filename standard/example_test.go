package standard_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/deploy"
	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/session"
	"github.com/lanconnect/lanconnect/standard"
)

// A console fills its own part of the Config, then lets Apply add the
// standard pieces: SCM only, with the vendor's service prefix and journals
// kept on disk so that a crashed console can still clean up.
func ExampleApply() {
	applet, err := deploy.AppletFromFile("acme-applet.exe", "2.3.1", "dist/acme-applet.exe")
	if err != nil {
		log.Fatal(err)
	}
	cfg := session.Config{
		CheckinListen: "10.0.0.5:0",
		AppletParams:  map[string]string{"Ticket": "T-1234"},
		Logger:        slog.Default(),
	}
	err = standard.Apply(&cfg, standard.Options{
		Applet:        applet,
		Method:        standard.MethodSCM,
		ServicePrefix: "acme-",
		JournalDir:    "/var/lib/acme/journals",
		Vendor:        "Acme",
		AppletName:    "Helper",
	})
	if err != nil {
		log.Fatal(err)
	}
	c, err := session.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// c.Connect(ctx, host) ...
}

// Before connecting, a console asks why a computer cannot be reached:
// Check changes nothing on it, and each item that would stop a Connect
// carries the diagnosis the Connect would give.
func ExampleApply_check() {
	applet, err := deploy.AppletFromFile("acme-applet.exe", "2.3.1", "dist/acme-applet.exe")
	if err != nil {
		log.Fatal(err)
	}
	admin, err := adauth.Parse(`CORP\helpdesk`, os.Getenv("ACME_PASSWORD"))
	if err != nil {
		log.Fatal(err)
	}
	cfg := session.Config{Credentials: admin, CheckinListen: "10.0.0.5:0"}
	if err := standard.Apply(&cfg, standard.Options{Applet: applet}); err != nil {
		log.Fatal(err)
	}
	c, err := session.New(cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	r := c.Check(context.Background(), discovery.Host{Name: "PC042", DNSName: "pc042.corp.example"})
	for _, it := range r.Items() {
		fmt.Printf("%-16s %-7s %s\n", it.Name, it.Item.Status, it.Item.Value)
		if d := it.Item.Diagnosis; !d.IsZero() {
			fmt.Printf("%16s %s: %s\n", "", d.Code, d)
		}
	}
	fmt.Println("ready:", r.Ready)
}
