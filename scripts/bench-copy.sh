#!/usr/bin/env bash
# Copy benchmark: deploy.Copy against `smbclient -c put` on the same lab
# target in one run, interleaved rounds, medians and ratios; then the time
# to authenticate and prove administrator rights (median of 20).
#
#   BENCH_MB=50 BENCH_ROUNDS=5 BENCH_AUTH=20 scripts/bench-copy.sh
#
# Needs root (lab namespaces). Copy is measured twice: on a signed session
# (AES-CMAC, go-smb2's only signing algorithm) and on an encrypted one
# (AES-GCM, adauth's default); smbclient signs (it negotiates AES-GMAC).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "bench-copy: the lab needs root; run 'sudo make bench-copy'." >&2
	exit 1
fi
export LANCONNECT_BENCH_COPY=1
export LANCONNECT_BENCH_MB="${BENCH_MB:-50}"
export LANCONNECT_BENCH_ROUNDS="${BENCH_ROUNDS:-5}"
export LANCONNECT_BENCH_AUTH="${BENCH_AUTH:-20}"
echo "bench-copy: load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
go test -count=1 -timeout 30m -run '^TestCopyBench$' -v ./deploy/ 2>&1 | grep -E '^(BENCH|---|ok|FAIL|panic)|round [0-9]+:|Error' 
