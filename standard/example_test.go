package standard_test

import (
	"log"
	"log/slog"

	"github.com/lanconnect/lanconnect/deploy"
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
