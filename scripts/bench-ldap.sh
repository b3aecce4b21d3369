#!/usr/bin/env bash
# bench-ldap.sh: our directory dump against ldapsearch, on one lab DC.
#
# Brings up a Samba AD DC lab (internal/testlab) with COMPUTERS computer
# objects (default 10000; bulk-loading takes about 1.5 minutes), then dumps
# every enabled computer over LDAPS with a simple bind and page size 1000,
# RUNS times each (default 5, alternating, after one warm-up each):
#   - ours:       adauth.Directory.Discover
#   - ldapsearch: ldapsearch -E pr=1000/noprompt, same filter and attributes
# and prints total time and time to first entry for both, our peak heap and
# the ratio of total times. Targets: ratio <= 1.2, peak heap < 30 MB.
# Then the same dump with address lookups, against a DNS server on
# loopback that never answers and one that answers NXDOMAIN, with
# ldapsearch again in the same rounds: listing time against ldapsearch
# (target 1.2x) and how long Discover took to return after the listing.
#
# Needs root (network namespaces), Samba and ldap-utils (make setup).
# All traffic stays on the lab's private bridge.
set -euo pipefail
cd "$(dirname "$0")/.."

export LANCONNECT_BENCH_LDAP=1
export LANCONNECT_BENCH_COMPUTERS="${COMPUTERS:-10000}"
export LANCONNECT_BENCH_RUNS="${RUNS:-5}"

go test -count=1 -timeout 60m -run '^TestDirectoryBench$' -v ./adauth/
