#!/usr/bin/env bash
# `make demo`: ecp working end to end, step by step. It starts a private
# dbus-daemon (system-bus policy plus ecp's own policy file) and ecpd on a
# temporary sled store; nothing outside a temporary directory is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building ecp (cargo build --workspace)"
cargo build --quiet --workspace
ECPCTL=$ROOT/target/debug/ecpctl
ECPD=$ROOT/target/debug/ecpd

WORK=$(mktemp -d /tmp/ecp-demo.XXXXXX)
BUS_PID= ECPD_PID=
cleanup() {
    [ -n "$ECPD_PID" ] && kill "$ECPD_PID" 2>/dev/null || true
    [ -n "$BUS_PID" ] && kill "$BUS_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

say "1. Starting a private system-like D-Bus and ecpd on a temporary store"
mkdir -p "$WORK/system.d"
cp packaging/dbus/org.ecp.Ecpd1.conf "$WORK/system.d/"
sed -e "s|@SOCKET@|$WORK/bus.socket|" -e "s|@SYSTEM_D@|$WORK/system.d|" tests/bus.conf.in >"$WORK/bus.conf"
dbus-daemon --config-file="$WORK/bus.conf" --nofork --print-address=3 3>"$WORK/address" 2>/dev/null &
BUS_PID=$!
for _ in $(seq 50); do [ -s "$WORK/address" ] && break; sleep 0.1; done
BUS=$(head -n1 "$WORK/address")
printf 'host_name = "demo-host"\n' >"$WORK/ecpd.toml"
"$ECPD" --bus "$BUS" --db "$WORK/db" --config "$WORK/ecpd.toml" 2>"$WORK/ecpd.log" &
ECPD_PID=$!
for _ in $(seq 100); do "$ECPCTL" --bus "$BUS" status >/dev/null 2>&1 && break; sleep 0.1; done
"$ECPCTL" --bus "$BUS" status

printf 'demo passphrase\n' >"$WORK/pass"
chmod 600 "$WORK/pass"

say "2. alice makes her key pair (the key stays with her, encrypted with scrypt + AES-256-CBC)"
"$ECPCTL" keygen --user alice --out "$WORK/alice" --passphrase-file "$WORK/pass"

say "3. The admin enrolls her certificate (the daemon only ever sees the public part)"
"$ECPCTL" --bus "$BUS" enroll alice --cert "$WORK/alice/certificate.pem" --label laptop
"$ECPCTL" --bus "$BUS" list alice

say "4. A whole login round without PAM: challenge, sign, verify"
"$ECPCTL" --bus "$BUS" test-login alice --key "$WORK/alice/private_key.pem" --passphrase-file "$WORK/pass"

say "5. The same, by hand over D-Bus: the daemon issues a one-time challenge ..."
TOKEN=$(dbus-send --bus="$BUS" --print-reply=literal --dest=org.ecp.Ecpd1 /org/ecp/Ecpd1 \
    org.ecp.Ecpd1.Auth.Challenge string:alice string:sshd string:192.0.2.10 | tr -d ' ')
echo "   token: $TOKEN"
say "   ... alice signs it (she sees what she approves) ..."
SIG=$("$ECPCTL" sign --key "$WORK/alice/private_key.pem" --passphrase-file "$WORK/pass" "$TOKEN")
echo "   signature: $SIG"
say "   ... and the daemon verifies it"
dbus-send --bus="$BUS" --print-reply --dest=org.ecp.Ecpd1 /org/ecp/Ecpd1 \
    org.ecp.Ecpd1.Auth.Verify string:alice string:"$TOKEN" string:"$SIG" >/dev/null && echo "   accepted"

say "6. A replay of the same signed challenge is refused"
if dbus-send --bus="$BUS" --print-reply --dest=org.ecp.Ecpd1 /org/ecp/Ecpd1 \
    org.ecp.Ecpd1.Auth.Verify string:alice string:"$TOKEN" string:"$SIG" 2>&1; then
    echo "UNEXPECTED: the replay was accepted"; exit 1
fi

say "7. A wrong passphrase and a certificate for another user get clear errors"
"$ECPCTL" --bus "$BUS" test-login alice --key "$WORK/alice/private_key.pem" \
    --passphrase-file <(echo wrong) || echo "   (exit $?)"
"$ECPCTL" --bus "$BUS" enroll bob --cert "$WORK/alice/certificate.pem" || echo "   (exit $?)"

say "8. What the daemon logged (structured, no secrets)"
cat "$WORK/ecpd.log"

say "Done. The bus, ecpd and $WORK are gone."
echo "(Logging in through PAM with pam_ecp.so comes with the PAM module.)"
