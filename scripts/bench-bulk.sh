#!/usr/bin/env bash
# Bulk benchmark (issue 17 §3): connect to 1, 16 and 64 lab hosts in one
# run, each reaching Running and then Closed, on one lab of 64 targets
# (smbd, nmbd and winemu each). Prints, per size, the wall time, the
# median and p95 time to Running, connect's peak RSS (ru_maxrss of the
# exited process), the median time of each step, the CPU of connect and of
# the lab, and the ratios against the goals (16 hosts within 2.5x one
# host, 64 within 4x, peak RSS under 100 MB at 64).
#
#   BENCH_SIZES=1,16,64 BENCH_ROUNDS=3 scripts/bench-bulk.sh
#
# Needs root (lab namespaces). Installs nothing: scripts/setup.sh has what
# it needs. The first pass is cold (Samba spawns its RPC helpers at the
# first connect) and printed apart; the goals are checked on the warm
# rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench-bulk: the lab needs root; run 'sudo make bench-bulk'." >&2
	exit 1
fi
export LANCONNECT_BENCH_SIZES="${BENCH_SIZES:-1,16,64}"
export LANCONNECT_BENCH_ROUNDS="${BENCH_ROUNDS:-3}"
echo "bench-bulk: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
go test -count=1 -timeout 60m -run '^$' -bench '^BenchmarkLabBulk$' -benchtime 1x ./examples/connect/ 2>&1 |
	grep -E '^(BENCH|--- FAIL|ok|FAIL|panic)|Error|_test.go:[0-9]+: [^B]'
echo "bench-bulk: load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
