#!/usr/bin/env bash
# The Debian packages (and cargo tools) the demo and the tests need.
#   sudo scripts/deps.sh          install them (CI runs this)
#   scripts/deps.sh --check       say what is missing, install nothing
set -euo pipefail

# openssl: interop tests; python3-cryptography: interop with Python's
# library; util-linux: setsid/setpriv/unshare; passwd: useradd/userdel for
# test users; dbus-daemon + dbus-bin: the private test bus and dbus-send;
# libpam0g-dev: pam-bindings links libpam; libpam-wrapper + pamtester: real
# libpam driving the built module; binutils: nm; openssh-server/-client and
# sudo: the module inside the real programs; man-db and systemd: the
# package test (systemd-analyze verify).
PACKAGES=(openssl python3 python3-cryptography util-linux passwd dbus-daemon dbus-bin
    libpam0g-dev libpam-modules libpam-wrapper pamtester binutils pkg-config make
    openssh-server openssh-client sudo man-db systemd)

if [ "${1:-}" = "--check" ]; then
    missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "missing Debian packages: ${missing[*]}" >&2
        echo "install them with: sudo scripts/deps.sh" >&2
        exit 1
    fi
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${PACKAGES[@]}"

# The package test builds the .deb with cargo-deb; the dependency policy
# is checked with cargo-deny; the fuzz targets run briefly with cargo-fuzz.
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
command -v cargo-deny >/dev/null 2>&1 || cargo install cargo-deny --locked --no-default-features
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
