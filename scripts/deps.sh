#!/usr/bin/env bash
# The Debian packages (and cargo tools) the demo and the tests need.
#   sudo scripts/deps.sh          install them (CI runs this)
#   scripts/deps.sh --check       say what is missing, install nothing
#   scripts/deps.sh --ensure      install only what is missing (root), or
#                                 say the sudo command (what make demo/test run)
set -euo pipefail

# openssl: interop tests; python3-cryptography: interop with Python's
# library; util-linux: setsid/setpriv/unshare; passwd: useradd/userdel for
# test users; dbus-daemon + dbus-bin: the private test bus and dbus-send;
# libpam0g-dev: pam-bindings links libpam; libpam-wrapper + pamtester: real
# libpam driving the built module; binutils: nm; openssh-server/-client and
# sudo: the module inside the real programs; man-db and systemd: the
# package test (systemd-analyze verify); slapd + ldap-utils: a private
# directory server for the LDAP tests (the machine's own slapd is unused);
# softhsm2 + opensc: a throwaway PKCS#11 token (and pkcs11-tool) for the
# hardware-token tests; p11-kit-modules: the proxy module, ecpctl's default;
# polkitd: its PAM service lives in /usr/lib/pam.d, which doctor must read;
# selinux-policy-dev/-default, setools, semodule-utils, policycoreutils: the
# SELinux module built and queried in a scratch policy store (installing
# them does not turn SELinux on); rpm + rpmlint: `make rpm` and its checks.
PACKAGES=(openssl python3 python3-cryptography util-linux passwd dbus-daemon dbus-bin
    libpam0g-dev libpam-modules libpam-wrapper pamtester binutils pkg-config make
    openssh-server openssh-client sudo man-db systemd slapd ldap-utils
    softhsm2 opensc p11-kit-modules polkitd
    selinux-policy-dev selinux-policy-default setools semodule-utils policycoreutils
    rpm rpmlint)

TOOLS=(cargo-deb cargo-deny cargo-fuzz)

missing_packages() {
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}

missing_tools() {
    for t in "${TOOLS[@]}"; do
        command -v "$t" >/dev/null 2>&1 || echo "$t"
    done
}

install_packages() {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "$@"
}

# The package test builds the .deb with cargo-deb; the dependency policy
# is checked with cargo-deny; the fuzz targets run briefly with cargo-fuzz.
# Each is built once (a few minutes on two cores) into ~/.cargo/bin.
install_tools() {
    for t in "$@"; do
        case "$t" in
        cargo-deny) cargo install cargo-deny --locked --no-default-features ;;
        *) cargo install "$t" --locked ;;
        esac
    done
}

mapfile -t packages < <(missing_packages)
mapfile -t tools < <(missing_tools)

case "${1:-}" in
--check)
    # Say what is missing, install nothing.
    if [ ${#packages[@]} -gt 0 ]; then
        echo "missing Debian packages: ${packages[*]}" >&2
        echo "install them with: sudo scripts/deps.sh" >&2
        exit 1
    fi
    exit 0
    ;;
--ensure)
    # What `make demo` and `make test` run first: install what is missing,
    # as root; otherwise name the one command that does it.
    if [ ${#packages[@]} -gt 0 ]; then
        if [ "$(id -u)" -ne 0 ]; then
            echo "missing Debian packages: ${packages[*]}" >&2
            echo "install them with:  sudo scripts/deps.sh   (then run make again)" >&2
            exit 1
        fi
        echo "installing missing Debian packages: ${packages[*]}" >&2
        install_packages "${packages[@]}"
    fi
    if [ ${#tools[@]} -gt 0 ] && [ "${ECP_DEPS_TOOLS:-yes}" = yes ]; then
        echo "building missing cargo tools: ${tools[*]}" >&2
        install_tools "${tools[@]}"
    fi
    exit 0
    ;;
"")
    install_packages "${PACKAGES[@]}"
    install_tools "${tools[@]}"
    ;;
*)
    echo "usage: scripts/deps.sh [--check | --ensure]" >&2
    exit 2
    ;;
esac
