#!/usr/bin/env bash
# SMB probe benchmark: our NTLM-challenge probe against nmap's
# smb-os-discovery on the same lab /24 in the same run. Needs root (lab).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench-smb: the lab needs root; run 'sudo make bench-smb'." >&2
	exit 1
fi
command -v nmap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nmap >/dev/null || true
exec go test -tags benchsmb -count=1 -timeout 20m -run '^TestBenchSMBProbe$' -v ./discovery/smbprobe/ 2>&1 | grep -v '^=== RUN'
