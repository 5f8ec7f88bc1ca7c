# The two commands the README gives a newcomer.
#   make demo   shows ecp working, step by step, without touching the machine
#   make test   runs every check CI runs: formatting, lints, unit, interop
#               and end-to-end tests

CARGO ?= cargo

.PHONY: demo test lint build package package-files install bench differential selinux rpm

demo:
	./scripts/demo.sh

build:
	$(CARGO) build --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test:
	./scripts/test.sh

# Release binaries and generated completions: what the package installs.
package-files:
	$(CARGO) build --release --workspace
	mkdir -p target/completions
	target/release/ecpctl completions bash > target/completions/ecpctl.bash
	target/release/ecpctl completions zsh > target/completions/_ecpctl
	target/release/ecpctl completions fish > target/completions/ecpctl.fish

# The Debian package (needs `cargo install cargo-deb`): target/debian/ecp_*.deb
package: package-files
	$(CARGO) deb -p ecpctl --no-build

# The SELinux policy module (needs the reference policy's development
# files: selinux-policy-dev on Debian, selinux-policy-devel on Fedora):
# target/selinux/ecp.pp
selinux:
	mkdir -p target/selinux
	cp packaging/selinux/ecp.te packaging/selinux/ecp.fc packaging/selinux/ecp.if target/selinux/
	$(MAKE) -s -C target/selinux -f /usr/share/selinux/devel/Makefile ecp.pp

# The RPM and source RPM for the RHEL family (needs rpmbuild; runs on
# Debian too): target/rpm/ecp-VERSION-RELEASE.ARCH.rpm and .src.rpm
rpm: package-files selinux
	./packaging/rpm/build.sh

# Other distributions: make install [DESTDIR=...] [PREFIX=/usr/local] [PAMDIR=...]
install: package-files
	DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" PAMDIR="$(PAMDIR)" ./packaging/install.sh

# Figures beside their limits (release build, about four minutes):
# prints a table and writes target/bench/results.json
bench:
	$(CARGO) build --release --workspace
	$(CARGO) run --release -p ecp_bench -- --out target/bench/results.json

# ecpd's signature check (ring) against the p256 crate's on a million
# generated cases (make test runs 10,000): ECP_VERIFY_SEED=N repeats a run
differential:
	ECP_VERIFY_CASES=$${ECP_VERIFY_CASES:-1000000} $(CARGO) test --release -p ecp_core --lib verify:: -- --nocapture
