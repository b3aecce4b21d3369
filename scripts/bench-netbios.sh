#!/usr/bin/env bash
# NetBIOS benchmark: lanscan against nbtscan on the same lab /24 in the same
# run, both inside the lab's client namespace (wall time, time to first
# result, time from the first reply on the wire to the first result, hosts
# found, ratios, the load average, and the goal: lanscan's defaults within
# 0.5x of nbtscan's wall time), then a /16 sweep of loopback listeners for
# peak RSS. Needs root (lab namespaces, port 137).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench-netbios: the lab needs root; run 'sudo make bench-netbios'." >&2
	exit 1
fi
exec go test -tags benchnetbios -count=1 -timeout 20m -run '^TestBenchNetBIOS$' -v ./netbios/ 2>&1 | grep -v '^=== RUN'
