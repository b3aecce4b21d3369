#!/usr/bin/env bash
# make demo-console: the web console (examples/console) against a lab of
# Samba targets with winemu's SCM. Open the URL the console prints ("console:
# open http://127.0.0.1:8080/?key=..."): it carries a secret made for this
# launch, and the console refuses requests without it. Ctrl-C stops the
# console (closing its sessions) and tears the lab down.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
	echo "demo-console: the lab needs root (network namespaces and Samba daemons); run 'sudo make demo-console'." >&2
	exit 1
fi
bin=$(mktemp -d /tmp/lanconnect-console-demo.XXXXXX)
trap 'rm -rf "$bin"' EXIT
echo "demo-console: building the console, winemu, the applet and the lab runner..." >&2
export CGO_ENABLED=0
go build -o "$bin/console" ./examples/console
go build -o "$bin/winemu" ./internal/winemu/cmd/winemu
go build -o "$bin/applet" ./examples/applet
go build -o "$bin/demolab" ./examples/console/demolab
"$bin/demolab" -console "$bin/console" -winemu "$bin/winemu" -applet "$bin/applet" "$@"
