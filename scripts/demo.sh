#!/usr/bin/env bash
# The README's main job: bring up the lab, run the examples against it, tear it down.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "demo: the lab needs root (network namespaces and Samba daemons); run 'sudo make demo'." >&2
	exit 1
fi
exec go run ./internal/testlab/cmd/lab demo "$@"
