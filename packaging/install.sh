#!/bin/sh
# Install ecp from a release build, for distributions without the Debian
# package: `make install [DESTDIR=…] [PREFIX=/usr/local] [PAMDIR=…]`.
# Afterwards (as root, when DESTDIR is empty): create the daemon account
#   systemd-sysusers $SYSUSERSDIR/ecp.conf
# reload D-Bus and systemd, and add pam_ecp to the PAM stacks you choose.
set -eu
cd "$(dirname "$0")/.."

DESTDIR=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
DATADIR=${DATADIR:-$PREFIX/share}
if [ -z "${PAMDIR:-}" ]; then
    triple=$(gcc -dumpmachine 2>/dev/null || echo "$(uname -m)-linux-gnu")
    for dir in "/usr/lib/$triple/security" "/lib/$triple/security" /usr/lib64/security /usr/lib/security /lib/security; do
        if [ -d "$dir" ]; then PAMDIR=$dir; break; fi
    done
    PAMDIR=${PAMDIR:-/usr/lib/security}
fi
SYSTEMDDIR=${SYSTEMDDIR:-/lib/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-/usr/lib/sysusers.d}

R=target/release
for f in "$R/ecpctl" "$R/ecpd" "$R/libpam_ecp.so" target/completions/ecpctl.bash; do
    [ -e "$f" ] || { echo "install.sh: $f missing; run 'make package-files' first" >&2; exit 1; }
done

inst() { install -D -m "$1" "$2" "$DESTDIR$3"; }
inst 755 "$R/ecpctl" "$PREFIX/bin/ecpctl"
inst 755 packaging/ecpctl-askpass "$PREFIX/bin/ecpctl-askpass"
inst 755 "$R/ecpd" "$PREFIX/sbin/ecpd"
inst 644 "$R/libpam_ecp.so" "$PAMDIR/pam_ecp.so"
if [ ! -e "$DESTDIR$SYSCONFDIR/ecp/ecpd.toml" ]; then
    inst 644 packaging/ecpd.toml "$SYSCONFDIR/ecp/ecpd.toml"
fi
inst 644 packaging/dbus/org.ecp.Ecpd1.conf "$DATADIR/dbus-1/system.d/org.ecp.Ecpd1.conf"
sed "s|/usr/sbin/ecpd|$PREFIX/sbin/ecpd|" packaging/systemd/ecpd.service >target/ecpd.service
inst 644 target/ecpd.service "$SYSTEMDDIR/ecpd.service"
inst 644 packaging/sysusers.d/ecp.conf "$SYSUSERSDIR/ecp.conf"
sed "s|/usr/sbin/ecpd|$PREFIX/sbin/ecpd|" packaging/dbus/org.ecp.Ecpd1.service >target/org.ecp.Ecpd1.service
inst 644 target/org.ecp.Ecpd1.service "$DATADIR/dbus-1/system-services/org.ecp.Ecpd1.service"
for page in ecpctl.1 ecpd.8 pam_ecp.8 ecpd.toml.5; do
    inst 644 "packaging/man/$page" "$DATADIR/man/man${page##*.}/$page"
done
inst 644 target/completions/ecpctl.bash "$DATADIR/bash-completion/completions/ecpctl"
inst 644 target/completions/_ecpctl "$DATADIR/zsh/site-functions/_ecpctl"
inst 644 target/completions/ecpctl.fish "$DATADIR/fish/vendor_completions.d/ecpctl.fish"
inst 644 packaging/pam.d/sshd.example "$DATADIR/doc/ecp/examples/sshd.example"
inst 644 packaging/pam.d/sudo.example "$DATADIR/doc/ecp/examples/sudo.example"
inst 644 packaging/systemd/ecpd-directory.conf "$DATADIR/doc/ecp/examples/ecpd-directory.conf"
echo "installed ecp under ${DESTDIR:-/} (PREFIX=$PREFIX, PAM modules in $PAMDIR)"
