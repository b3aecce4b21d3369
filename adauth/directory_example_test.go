package adauth_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/lanconnect/lanconnect/adauth"
	"github.com/lanconnect/lanconnect/discovery"
)

// ExampleDirectory streams the enabled computers of a domain over LDAPS,
// merged with any other discoverer through discovery.Merge.
func ExampleDirectory() {
	creds, err := adauth.Parse(`CORP\helpdesk`, os.Getenv("LANCONNECT_PASSWORD"))
	if err != nil {
		log.Fatal(err)
	}
	dir := &adauth.Directory{
		URL:         "ldaps://dc1.corp.example", // or Domain: "corp.example" to use DNS SRV
		CAFile:      "/etc/lanconnect/corp-ca.pem",
		Credentials: creds,
		OUs:         []string{"OU=Workstations,DC=corp,DC=example"},
		NameFilter:  "WS-*",
	}
	ctx := context.Background()
	for u := range discovery.Merge(ctx, dir) {
		switch u.Kind {
		case discovery.HostNew, discovery.HostChanged:
			fmt.Println(u.Host.Name, u.Host.DNSName, u.Host.Addrs, u.Host.OS)
		case discovery.SourceDone:
			var le *adauth.LDAPError
			switch {
			case errors.Is(u.Err, adauth.ErrInvalidCredentials):
				fmt.Println("wrong account or password")
			case errors.Is(u.Err, adauth.ErrCertificate):
				fmt.Println("the DC's certificate is not trusted:", u.Err)
			case errors.As(u.Err, &le):
				fmt.Printf("%s failed: %s\n", le.Op, le.Meaning)
			}
		}
	}
}
