package main

import (
	"flag"
	"fmt"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/discovery/smbprobe"
	"github.com/lanconnect/lanconnect/netbios"
)

// smbSource probes TCP 445 with an SMB2 negotiate and an anonymous NTLM
// challenge (discovery/smbprobe): it names hosts whose NetBIOS is off and
// adds the dialect, the signing requirement and the OS build to the others.
// It is on with -smb, and by default when lanscan scans the local subnets
// (no TARGET); -no-smb turns it off.
func smbSource() *source {
	var on, off bool
	var conc int
	return &source{
		name: "smb",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&on, "smb", false, "also probe TCP 445 (SMB2 negotiate and anonymous NTLM challenge: names, domain, OS build, signing); on by default with no TARGET")
			fs.BoolVar(&off, "no-smb", false, "do not probe TCP 445")
			fs.IntVar(&conc, "smb-concurrency", 64, "SMB probes in flight at once")
		},
		build: func(cfg *config) ([]discovery.Discoverer, error) {
			if off && on {
				return nil, fmt.Errorf("-smb and -no-smb contradict each other")
			}
			if off || (!on && len(cfg.targets) > 0) {
				return nil, nil
			}
			if conc < 1 {
				return nil, fmt.Errorf("-smb-concurrency must be at least 1, got %d", conc)
			}
			var ranges []discovery.AddrRange
			if len(cfg.targets) > 0 {
				t, err := netbios.ParseTargets(cfg.targets...)
				if err != nil {
					return nil, err
				}
				ranges = t.Ranges
			} else {
				// The NetBIOS source has already said which subnets were capped.
				t, _, err := netbios.LocalTargets(maxLocalBits)
				if err != nil {
					return nil, err
				}
				ranges = t.Ranges
			}
			d := &smbprobe.Discoverer{Targets: ranges, Concurrency: conc}
			if cfg.timeout > 0 {
				d.Prober.Timeout = cfg.timeout
			}
			if cfg.rate > 0 {
				d.Rate = float64(cfg.rate)
			}
			return []discovery.Discoverer{d}, nil
		},
	}
}
