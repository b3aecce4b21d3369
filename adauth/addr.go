package adauth

import "github.com/lanconnect/lanconnect/discovery"

// AddrOf returns the address to connect to for h: the first of AddrsOf(h),
// or "" when h has no address and no name. It does not resolve anything
// and does not refuse a host flagged with a Conflict.
func AddrOf(h discovery.Host) string {
	if as := AddrsOf(h); len(as) > 0 {
		return as[0]
	}
	return ""
}

// AddrsOf returns the addresses to try for h, in order. When sources
// trusted for addresses (DNS, the directory) reported some, it returns
// h.TrustedAddrs in the order first seen and nothing else: a host's own
// claims (NetBIOS, the SMB probe) are never used beside them. Otherwise it
// returns h's first address, else its DNS name, else its NetBIOS name
// (one entry), or nil when h has none of them. It does not resolve
// anything and does not refuse a host flagged with a Conflict.
func AddrsOf(h discovery.Host) []string {
	var out []string
	for _, a := range h.TrustedAddrs {
		if a.IsValid() {
			out = append(out, a.Unmap().String())
		}
	}
	switch {
	case len(out) > 0:
		return out
	case len(h.Addrs) > 0 && h.Addrs[0].IsValid():
		return []string{h.Addrs[0].Unmap().String()}
	case h.DNSName != "":
		return []string{h.DNSName}
	case h.Name != "":
		return []string{h.Name}
	}
	return nil
}
