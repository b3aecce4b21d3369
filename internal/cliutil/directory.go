package cliutil

import (
	"flag"

	"github.com/lanconnect/lanconnect/adauth"
)

// DirectoryFlags are the directory flags that lanscan and connect share,
// with the same names and meanings: -ldap URL, -ldap-ca FILE and
// -ldap-server-name NAME.
type DirectoryFlags struct {
	URL, CAFile, ServerName string
}

// Register defines the flags on fs; what says what the program does with
// the DC, for -ldap's help ("also read computers from").
func (f *DirectoryFlags) Register(fs *flag.FlagSet, what string) {
	fs.StringVar(&f.URL, "ldap", "", what+" the AD domain controller at `URL` (ldaps://host, or ldap://host for StartTLS)")
	fs.StringVar(&f.CAFile, "ldap-ca", "", "verify the DC's certificate against the CAs in PEM `FILE` (default: the system pool)")
	fs.StringVar(&f.ServerName, "ldap-server-name", "", "the `NAME` the DC's certificate must be valid for (default: the host of -ldap)")
}

// Set reports whether any of the flags was given.
func (f *DirectoryFlags) Set() bool { return f.URL != "" || f.CAFile != "" || f.ServerName != "" }

// Directory returns the adauth.Directory the flags describe, binding as
// creds (adauth.BindAuto). It does not connect.
func (f *DirectoryFlags) Directory(creds adauth.Credentials) *adauth.Directory {
	return &adauth.Directory{URL: f.URL, CAFile: f.CAFile, ServerName: f.ServerName, Credentials: creds}
}
