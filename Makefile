# lanconnect: the two commands that matter are `make demo` and `make test`.
# Both install what they need (see scripts/setup.sh) on a fresh Debian 12 machine.

GO          ?= go
GOBIN       := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck
TESTFLAGS   ?=
PKGS        ?= ./...

.PHONY: all setup test lint unit demo lab-up lab-down lab-status

all: test

## setup: install the Samba lab packages (as root), staticcheck and Go modules.
setup:
	@bash scripts/setup.sh

## test: formatting, vet, staticcheck and every test with -race (lab tests included when root).
test: setup lint unit

lint:
	@files=$$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null); \
	 out=$$(gofmt -l $$files); if [ -n "$$out" ]; then echo "gofmt -l reports:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(STATICCHECK) $(PKGS)
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./examples/applet
	GOOS=windows GOARCH=arm64 $(GO) build -o /dev/null ./examples/applet

unit:
	$(GO) test -race -count=1 -timeout 40m $(TESTFLAGS) $(PKGS)

## demo: bring up the lab, run the examples against it, tear it down.
demo: setup
	@bash scripts/demo.sh

lab-up:
	$(GO) run ./internal/testlab/cmd/lab up
lab-down:
	$(GO) run ./internal/testlab/cmd/lab down
lab-status:
	$(GO) run ./internal/testlab/cmd/lab status

.PHONY: bench-netbios
## bench-netbios: lanscan against nbtscan on the lab /24 from the lab's client namespace (goal: 0.5x nbtscan's wall time), and a /16 loopback sweep for peak RSS (root).
bench-netbios:
	@bash scripts/bench-netbios.sh

.PHONY: bench-smb
## bench-smb: the SMB2 NTLM-challenge probe against nmap's smb-os-discovery on the lab /24 (root).
bench-smb:
	@bash scripts/bench-smb.sh

.PHONY: bench-copy bench-ldap bench-kerberos
## bench-copy: deploy.Copy against smbclient put of 50 MiB to one lab target, and the time to prove admin (root).
bench-copy:
	@bash scripts/bench-copy.sh
## bench-kerberos: connect -auth kerberos against -auth ntlm on the same 16 lab domain members (time to Running, ratio) and the AS-REQs the KDC received for the 16-host run, counted with tshark (goal: one AS exchange) (root).
bench-kerberos:
	@bash scripts/bench-kerberos.sh
## bench-ldap: the directory dump against ldapsearch -E pr=1000 on a 10,000-computer lab DC, also with a silent and an NXDOMAIN DNS server (root).
bench-ldap:
	@bash scripts/bench-ldap.sh

.PHONY: bench-bulk
## bench-bulk: connect to 1, 16 and 64 lab hosts in one run (wall, median and p95 time to Running, peak RSS, per-step medians) against the goals 2.5x, 4x and 100 MB (root).
bench-bulk:
	@bash scripts/bench-bulk.sh

.PHONY: demo-console
## demo-console: the web console (examples/console) against a lab; open the printed URL (it carries the launch secret), Ctrl-C tears down (root).
demo-console: setup
	@bash scripts/demo-console.sh
