package krb

import (
	"fmt"
	"net/netip"
	"strings"
)

// Service classes of the SPNs the SDK asks tickets for.
const (
	// CIFS is for SMB: file copy, and the RPC pipes that ride the SMB
	// session (\pipe\svcctl, \pipe\winreg).
	CIFS = "cifs"
	// Host is for svcctl and winreg over TCP (ncacn_ip_tcp).
	Host = "host"
	// RPCSS is for DCOM activation (WMI), as Windows asks for it.
	RPCSS = "RPCSS"
	// LDAP is for the directory.
	LDAP = "ldap"
)

// SPN returns the service principal name class/fqdn, for example
// cifs/ws01.corp.example. fqdn must be the computer's DNS name: an IP
// address or a name without a dot fails with ErrNeedsDNSName, since the
// KDC knows computers by their DNS names only (and an IP literal would
// let any host that answers on it ask for our ticket). A trailing dot is
// dropped and the name is lower-cased, as Windows does.
func SPN(class, fqdn string) (string, error) {
	switch class {
	case CIFS, Host, RPCSS, LDAP:
	default:
		return "", fmt.Errorf("%w: service class %q", ErrBadInput, class)
	}
	name := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(fqdn), "."))
	if _, err := netip.ParseAddr(strings.Trim(name, "[]")); err == nil {
		return "", fmt.Errorf("%w: %s", ErrNeedsDNSName, fqdn)
	}
	if !strings.Contains(name, ".") {
		return "", fmt.Errorf("%w: %q is not a fully qualified DNS name", ErrNeedsDNSName, fqdn)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || label[0] == '-' {
			return "", fmt.Errorf("%w: %q is not a DNS name", ErrBadInput, fqdn)
		}
	}
	return class + "/" + name, nil
}
