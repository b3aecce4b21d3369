#!/usr/bin/env bash
# Kerberos benchmark: connect -auth kerberos against -auth ntlm on the same
# 16 lab domain members in one run (one host and all 16, interleaved
# rounds): time to Running (median, p95, max) and wall time of each, the
# ratio Kerberos/NTLM, and the AS-REQs and TGS-REQs the KDC received during
# each Kerberos run (dumpcap in the DC's namespace, counted with tshark),
# next to connect's own "kerberos KDC traffic" counters.
#
#   BENCH_ROUNDS=3 scripts/bench-kerberos.sh
#
# LANCONNECT_BENCH_LOGS=DIR keeps each run's connect -v output (the TGT and
# service-ticket timeline) in DIR.
#
# Needs root (lab namespaces) and tshark (scripts/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench-kerberos: the lab needs root; run 'sudo make bench-kerberos'." >&2
	exit 1
fi
export LANCONNECT_BENCH_KERBEROS=1
export LANCONNECT_BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
echo "bench-kerberos: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
go test -count=1 -timeout 30m -run '^TestKerberosBench$' -v ./examples/connect/ 2>&1 | grep -E 'BENCH|^(---|ok|FAIL|panic)|_test.go:[0-9]+:'
