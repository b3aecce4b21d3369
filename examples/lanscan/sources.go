package main

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/lanconnect/lanconnect/discovery"
	"github.com/lanconnect/lanconnect/netbios"
)

// config is what the common flags and the positional targets say.
type config struct {
	targets []string // TARGET arguments; empty means the local subnets
	timeout time.Duration
	rate    int
	retries int
	json    bool
	filter  discovery.Filter
	stderr  io.Writer // for one-line notes such as "capped at /22"

	// progress is where sources report sweep progress, for the terminal
	// progress line. It may be nil.
	progress func(netbios.Progress)

	// directories are the directory sources built, for the closing
	// summary (summaries).
	directories []*countedDirectory

	// owned is what the sources opened for the scan, closed by
	// closeOwned; wrap, when set, stands in for each (see runOwning).
	owned []io.Closer
	wrap  func(io.Closer) io.Closer
}

// own makes c lanscan's to close when the run ends (closeOwned). A source
// calls it as soon as it opened c, so that a later flag error closes it
// too.
func (cfg *config) own(c io.Closer) {
	if cfg.wrap != nil {
		c = cfg.wrap(c)
	}
	cfg.owned = append(cfg.owned, c)
}

// closeOwned closes what the sources opened, last opened first. Their
// errors are not reported: a ticket cache's Close only forgets its keys
// and tickets.
func (cfg *config) closeOwned() {
	for i := len(cfg.owned) - 1; i >= 0; i-- {
		_ = cfg.owned[i].Close()
	}
	cfg.owned = nil
}

// source is one kind of discoverer lanscan can run. Adding a source is
// one entry in sources: it registers its flags, then builds its
// discoverers from the parsed flags (none when it is not enabled).
type source struct {
	name  string
	flags func(fs *flag.FlagSet)
	build func(cfg *config) ([]discovery.Discoverer, error)
}

// sources lists every source lanscan knows, in the order they start.
func sources() []*source {
	return []*source{netbiosSource(), smbSource(), ldapSource()}
}

// buildDiscoverers asks every source for its discoverers.
func buildDiscoverers(srcs []*source, cfg *config) ([]discovery.Discoverer, error) {
	var ds []discovery.Discoverer
	for _, s := range srcs {
		d, err := s.build(cfg)
		if err != nil {
			return nil, err
		}
		ds = append(ds, d...)
	}
	return ds, nil
}

// netbiosSource sweeps the targets with node status requests; with no
// target, it sweeps the local IPv4 subnets (each capped at a /22) and
// broadcasts name queries on them.
func netbiosSource() *source {
	var bind137, noNetBIOS bool
	return &source{
		name: "netbios",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&bind137, "bind137", false, "send NetBIOS requests from UDP port 137 (needs root; for old stacks that answer only to 137)")
			fs.BoolVar(&noNetBIOS, "no-netbios", false, "do not run the NetBIOS name service scan")
		},
		build: func(cfg *config) ([]discovery.Discoverer, error) {
			if noNetBIOS {
				return nil, nil
			}
			s := &netbios.Scanner{Rate: cfg.rate, Retries: cfg.retries, Timeout: cfg.timeout, Progress: cfg.progress}
			if bind137 {
				s.LocalAddr = netip.AddrPortFrom(netip.IPv4Unspecified(), netbios.DefaultPort)
			}
			var t netbios.Targets
			if len(cfg.targets) > 0 {
				var err error
				if t, err = netbios.ParseTargets(cfg.targets...); err != nil {
					return nil, err
				}
			} else {
				var err error
				if t, err = localTargets(cfg.stderr); err != nil {
					return nil, err
				}
			}
			return []discovery.Discoverer{&netbios.Discoverer{Scanner: s, Targets: t}}, nil
		},
	}
}

// maxLocalBits is the widest local subnet swept by default: a /22 (1022
// addresses, about two seconds at the default rate).
const maxLocalBits = 22

// localTargets returns netbios.LocalTargets and says on stderr which
// subnets were capped.
func localTargets(stderr io.Writer) (netbios.Targets, error) {
	t, capped, err := netbios.LocalTargets(maxLocalBits)
	if err != nil {
		return t, fmt.Errorf("%w: give a TARGET", err)
	}
	for _, c := range capped {
		fmt.Fprintf(stderr, "lanscan: %s: %v is wider than /%d: sweeping %v only (broadcast covers the whole subnet)\n",
			c.Interface, c.Subnet, maxLocalBits, c.Swept)
	}
	return t, nil
}
