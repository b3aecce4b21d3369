#!/usr/bin/env bash
# Installs what `make test` and `make demo` need on a fresh Debian 12 machine.
# As root it installs the Samba lab packages with apt-get; as another user it
# says what is missing and carries on (lab tests then skip, with a message).
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.8.2   # staticcheck 2026.2.2, the first with Go 1.26 support

# Debian packages of the lab: real Samba peers and the tools we measure against.
PKGS=(samba samba-ad-dc samba-dsdb-modules samba-vfs-modules winbind smbclient
      ldb-tools krb5-user ldap-utils nbtscan python3-impacket iproute2 procps
      faketime    # libfaketime: the lab DC with a skewed clock (Kerberos skew diagnosis)
      tshark      # dumpcap and tshark: make bench-kerberos counts the AS-REQs the lab KDC received
      chromium)   # Debian's Chromium drives the web console's browser test (chromedp)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ]; then
		echo "setup: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq "${missing[@]}" >/dev/null
	else
		echo "setup: not root, so the lab cannot run here. Missing packages: ${missing[*]}" >&2
		echo "setup: as root, run: apt-get install -y ${missing[*]}" >&2
		echo "setup: tests that need the lab will skip; everything else still runs." >&2
	fi
fi

gobin=$(go env GOPATH)/bin
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -q "(${STATICCHECK_VERSION#v})"; then
	echo "setup: installing staticcheck ${STATICCHECK_VERSION}"
	GOFLAGS= go install "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}"
fi
go mod download
