# netbootd — run `make help` for the targets.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
# Every build, vet, test and lint with the same flags, so they share one build cache: on a fresh
# CI machine each distinct flag set compiles every dependency again.
export GOFLAGS := -trimpath $(shell $(GO) env GOFLAGS)
BIN := bin/netbootd
# Version, commit and the commit's date (scripts/version.sh), stamped into every binary, image and
# package; the same commit stamps the same values, so it builds the same bytes.
STAMP := $(shell bash scripts/version.sh)
VERSION := $(patsubst VERSION=%,%,$(filter VERSION=%,$(STAMP)))
COMMIT := $(patsubst COMMIT=%,%,$(filter COMMIT=%,$(STAMP)))
DATE := $(patsubst DATE=%,%,$(filter DATE=%,$(STAMP)))
export SOURCE_DATE_EPOCH := $(patsubst SOURCE_DATE_EPOCH=%,%,$(filter SOURCE_DATE_EPOCH=%,$(STAMP)))
BUILDINFO := github.com/netbootd/netbootd/control/buildinfo
LDFLAGS := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).commit=$(COMMIT) -X $(BUILDINFO).date=$(DATE)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Integration tests share kernel objects (bpffs pins, veths): run packages one at a time.
ITEST_PKGS := ./tests/... $(foreach d,bpf tftp control,$(if $(wildcard $(d)/*),./$(d)/...))

.PHONY: arm64 help deps build version image deb FORCE ipxe stress-test test-vlan kube-tools qemu-vm xdp-pass dhcpgen xdpwire bench-xdp delayline stormbench bench-storm bench-tftp generate check-generated test unit integration lint bench bench-dhcp demo fuzz clean bench-boot install uninstall

help: ## this list
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

deps: ## install the Debian packages the tests, demo and benchmarks need (idempotent)
	@bash scripts/deps.sh

build: ## build bin/netbootd, stamped with the version, commit and commit date
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/netbootd

version: ## print the version make build, make image and make deb stamp
	@echo $(VERSION)

# IMAGE= names the image (default: scripts/release/image's, which is the chart's
# image.repository); its tag is the version.
PLATFORMS := amd64 arm64

bin/linux-%/netbootd: FORCE
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/netbootd

image: $(foreach a,$(PLATFORMS),bin/linux-$(a)/netbootd) ## OCI image index (linux/amd64, arm64) as bin/image (layout) and bin/image.tar, no daemon (IMAGE=)
	grub=$$(bash scripts/arm64-fetch.sh) && cd scripts/release && $(GO) run ./image $(if $(IMAGE),-name $(IMAGE)) -version $(VERSION) -commit $(COMMIT) -epoch $(SOURCE_DATE_EPOCH) -grub-arm64 "$$grub" \
		$(foreach a,$(PLATFORMS),-binary linux/$(a)=$(CURDIR)/bin/linux-$(a)/netbootd) -out $(CURDIR)/bin/image

# DEB_ARCH: amd64 or arm64 (the binary's GOARCH and the package's architecture).
DEB_ARCH ?= amd64

deb: bin/linux-$(DEB_ARCH)/netbootd ## Debian package bin/netbootd_VERSION-1_ARCH.deb (nfpm): binary, netbootd@.service, sysusers, default config; Depends: ipxe
	@mkdir -p bin/deb
	cp bin/linux-$(DEB_ARCH)/netbootd bin/deb/netbootd
	sed 's|/usr/local/bin/netbootd|/usr/bin/netbootd|g' deploy/systemd/netbootd@.service > bin/deb/netbootd@.service
	$(GO) build -C scripts/release -o $(CURDIR)/bin/nfpm github.com/goreleaser/nfpm/v2/cmd/nfpm
	rm -f bin/netbootd_*_$(DEB_ARCH).deb
	VERSION=$(VERSION) DEB_ARCH=$(DEB_ARCH) bin/nfpm package -f scripts/release/deb/nfpm.yaml -p deb -t bin/
FORCE:

xdpwire: # bench helper: reserved clients' requests ping-ponging with the XDP fast path on a veth, replies counted at the client
	$(GO) build -trimpath -o bin/xdpwire ./tests/xdpwire/cmd

dhcpgen: # bench helper: a bounded AF_PACKET DISCOVER flood for the XDP fast path
	$(GO) build -trimpath -o bin/dhcpgen ./tests/dhcpgen

qemu-vm: # demo helper: builds the VM payload and prints QEMU's arguments (tests/qemu)
	$(GO) build -trimpath -o bin/qemu-vm ./tests/qemu/cmd

xdp-pass: # test helper: XDP_PASS on a veth peer, which XDP_TX on veth needs (demo, benchmarks)
	$(GO) build -trimpath -o bin/xdp-pass ./tests/xdppass/cmd

test: deps build lint unit integration ## everything CI runs: lint, unit tests, root integration tests

unit: ## unit tests (no privileges), with the race detector
	$(GO) test -race -count=1 ./...
	cd scripts/release && $(GO) test -count=1 ./...


stress-test: ## unit tests RUNS times (5) in a cgroup at CPU_PCT% of one core (25): failures per test (root; PKGS, RUN)
	@bash scripts/stress-test.sh

kube-tools: # test helper: kube-apiserver and helm for tests/kube and the chart's checks, and a node's kubelet, controller-manager, scheduler and kubectl (tests/node), built once into a cache
	@bash scripts/kube-tools/build.sh >/dev/null

integration: build image deb kube-tools ## tests that cross veth pairs in namespaces with real clients (root)
	@[ "$$(id -u)" = 0 ] || { echo "integration tests need root: sudo make test" >&2; exit 1; }
	NETBOOTD_BIN=$(CURDIR)/$(BIN) $(GO) test -tags integration -p 1 -count=1 -timeout 45m $(ITEST_PKGS)

test-vlan: build ## the many-interfaces test with a real 802.1Q VLAN sub-interface (root; a kernel with CONFIG_VLAN_8021Q)
	@[ "$$(id -u)" = 0 ] || { echo "integration tests need root: sudo make test-vlan" >&2; exit 1; }
	NETBOOTD_BIN=$(CURDIR)/$(BIN) $(GO) test -tags integration,vlan -count=1 -run TestMultiIfVLAN ./tests/

CONTROLLER_GEN := sigs.k8s.io/controller-tools/cmd/controller-gen@v0.19.0
CRD_GEN = $(GO) run $(CONTROLLER_GEN) object crd paths=./control/inventory/kube/v1alpha1/... output:crd:dir=./deploy/helm/netbootd/crds

generate: ## rebuild the bpf2go output in bpf/ and tests/xdpwire/ (needs clang), the CRDs and their deep copies
	$(GO) generate ./bpf/ ./tests/xdpwire/
	$(CRD_GEN)

check-generated: ## the committed bpf2go output is what netbootd.c compiles to (when clang is here); the CRDs are what controller-gen makes
	@$(CRD_GEN) && git diff --exit-code --stat -- deploy/helm/netbootd/crds/ control/inventory/kube/v1alpha1/ || { echo "CRDs or deep copies are stale: run make generate and commit" >&2; exit 1; }
	@if command -v clang >/dev/null; then $(GO) generate ./bpf/ ./tests/xdpwire/ && git diff --exit-code --stat -- bpf/ tests/xdpwire/ || { echo "bpf2go output is stale: run make generate and commit" >&2; exit 1; }; else echo "no clang: generated files not checked"; fi

lint: check-generated ## gofmt, go vet, staticcheck, generated BPF objects current
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) run $(STATICCHECK) -tags integration ./...
	cd scripts/release && $(GO) mod tidy -diff && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

fuzz: ## run each fuzz target for a short while
	@bash scripts/fuzz.sh

bench: bench-dhcp bench-xdp bench-tftp bench-boot bench-storm ## every benchmark, side by side with the tools users would otherwise pick

bench-dhcp: deps build xdp-pass dhcpgen ## perfdhcp against netbootd, Kea and dnsmasq: highest rate with < 1% drops
	@bash scripts/bench-dhcp.sh

bench-xdp: deps build xdp-pass xdpwire ## XDP replies that reach the client on one core (veth direct and through a bridge), sent vs answered vs received
	@bash scripts/bench-xdp.sh

bench-tftp: deps build delayline ## atftp against netbootd's TFTP, atftpd, tftpd-hpa and dnsmasq: windows, RTT, storm, loss
	@bash scripts/bench-tftp.sh

bench-boot: deps build ## N VMs (4, 8; BIOS and UEFI) booting at once through netbootd and dnsmasq: time, network share, timeline
	@bash scripts/bench-boot.sh

bench-storm: deps build stormbench ## N simulated machines (200) booting at once: netbootd against dnsmasq + nginx: time, failures, resends, server CPU
	@bash scripts/bench-storm.sh

stormbench: # bench helper: simulated UEFI machines doing PXE DHCP, TFTP, iPXE DHCP and HTTP, each with its own MAC
	$(GO) build -trimpath -o bin/stormbench ./tests/stormbench

delayline: # bench helper: RTT and loss between two namespaces through TUN devices (no netem here)
	@if [ -d tests/delayline ]; then $(GO) build -trimpath -o bin/delayline ./tests/delayline; fi

demo: deps build xdp-pass qemu-vm ## a lab rack in namespaces: netbootd attached, real DHCP clients, two VMs booting, counters
	@bash scripts/demo.sh

clean:
	rm -rf bin

# install: bin/netbootd (`make build` first: install never builds, so `sudo make install` does not
# compile as root), the systemd unit netbootd@.service, an example configuration (kept if present)
# and, unless DESTDIR is set (packaging), the system user netbootd. Idempotent.
PREFIX ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR ?= $(SYSCONFDIR)/systemd/system

install: ## install bin/netbootd, netbootd@.service, an example config and the netbootd user (PREFIX, DESTDIR)
	@[ -x $(BIN) ] || { echo "$(BIN) is missing: run make build first" >&2; exit 1; }
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/netbootd
	install -d -m 0755 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/netbootd $(DESTDIR)$(PREFIX)/lib/sysusers.d
	sed 's|/usr/local/bin/netbootd|$(PREFIX)/bin/netbootd|g' deploy/systemd/netbootd@.service > $(DESTDIR)$(UNITDIR)/.netbootd@.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/.netbootd@.service.tmp && mv -f $(DESTDIR)$(UNITDIR)/.netbootd@.service.tmp $(DESTDIR)$(UNITDIR)/netbootd@.service
	install -m 0644 deploy/systemd/netbootd.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/netbootd.conf
	[ -e $(DESTDIR)$(SYSCONFDIR)/netbootd/netbootd.yaml.example ] || install -m 0644 deploy/systemd/netbootd.yaml $(DESTDIR)$(SYSCONFDIR)/netbootd/netbootd.yaml.example
	@if [ -z "$(DESTDIR)" ]; then \
		if id -u netbootd >/dev/null 2>&1; then echo "user netbootd exists"; \
		else echo "useradd --system netbootd"; useradd --system --user-group --home-dir /var/lib/netbootd --no-create-home \
			--shell /usr/sbin/nologin --comment "netbootd network-boot server" netbootd; fi; \
		if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi; \
		echo "next: cp $(SYSCONFDIR)/netbootd/netbootd.yaml.example $(SYSCONFDIR)/netbootd/IFACE.yaml, edit it, systemctl enable --now netbootd@IFACE"; \
	fi

uninstall: ## remove what install put in place; configuration, leases, the user and pinned XDP programs stay
	rm -f $(DESTDIR)$(PREFIX)/bin/netbootd $(DESTDIR)$(UNITDIR)/netbootd@.service $(DESTDIR)$(PREFIX)/lib/sysusers.d/netbootd.conf
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi

# ipxe: Debian 13's iPXE (runs autoexec.ipxe from its TFTP server) into a cache, and with
# USER_CLASS and IPXE_OUT, a TFTP root for netbootd behind your own DHCP server (docs/byo-*.md).
ipxe: ## iPXE binaries + autoexec.ipxe asking with USER_CLASS into IPXE_OUT (tftp.root), e.g. USER_CLASS=Tinkerbell IPXE_OUT=/srv/tftp
	@OUT="$(IPXE_OUT)" USER_CLASS="$(USER_CLASS)" bash scripts/ipxe-fetch.sh

# arm64: Debian 12's signed GRUB network image for arm64 and its http.mod, the same GRUB with http
# built in for UEFI HTTP boot (grub-mkimage), and, for the tests, an arm64 kernel and busybox, into
# a cache; with ARM64_OUT, also into that TFTP root (docs/arm64.md).
arm64: ## arm64 UEFI boot files (grubnetaa64.efi, grubhttpaa64.efi, grub/arm64-efi/http.mod) into a cache, and into ARM64_OUT (tftp.root) if set
	@ARM64_OUT="$(ARM64_OUT)" bash scripts/arm64-fetch.sh
