#!/usr/bin/env bash
# `make demo`: ecp working end to end, step by step. It starts a private
# dbus-daemon (system-bus policy plus ecp's own policy file) and ecpd on a
# temporary sled store, enrolls the current user and logs in through real
# libpam (pam_wrapper) with the built pam_ecp.so; nothing outside a
# temporary directory is touched.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ECP_DEPS_TOOLS=no ./scripts/deps.sh --ensure

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
ME=$(id -un)
mkdir -p "$WORK/system.d"
cp packaging/dbus/org.ecp.Ecpd1.conf "$WORK/system.d/"
if [ "$(id -u)" != 0 ]; then
    # The packaged policy lets only root or _ecpd own the name; let this
    # demo's own user own it on the private bus.
    printf '<busconfig><policy user="%s"><allow own="org.ecp.Ecpd1"/></policy></busconfig>\n' "$ME" \
        >"$WORK/system.d/demo-user.conf"
fi
sed -e "s|@SOCKET@|$WORK/bus.socket|" -e "s|@SYSTEM_D@|$WORK/system.d|" -e "s|@SERVICEDIRS@||" tests/bus.conf.in >"$WORK/bus.conf"
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

say "2. $ME makes a key pair (the key stays with the user, encrypted with scrypt + AES-256-CBC)"
"$ECPCTL" keygen --user "$ME" --out "$WORK/key" --passphrase-file "$WORK/pass"

say "3. The admin enrolls the certificate (the daemon only ever sees the public part)"
"$ECPCTL" --bus "$BUS" enroll "$ME" --cert "$WORK/key/certificate.pem" --label laptop
"$ECPCTL" --bus "$BUS" list "$ME"

say "4. Logging in through real libpam (pam_wrapper) with pam_ecp.so in keyfile mode"
mkdir -p "$WORK/pam.d"
MODULE=$ROOT/target/debug/libpam_ecp.so
cat >"$WORK/pam.d/ecp-keyfile" <<PAM
auth required $MODULE mode=keyfile keyfile=$WORK/key/private_key.pem bus=$BUS daemon_user=$ME
PAM
cat >"$WORK/pam.d/ecp-challenge" <<PAM
auth required $MODULE mode=challenge bus=$BUS daemon_user=$ME
PAM
echo "   /etc/pam.d-style service: $(cat "$WORK/pam.d/ecp-keyfile")"
pam() { LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$WORK/pam.d" \
        python3 tests/pam_driver.py "$@" 2>&1 | grep -v PWRAP_ || true; }
echo "   with the right passphrase:"
pam ecp-keyfile "$ME" "demo passphrase" 1
echo "   with a wrong passphrase:"
pam ecp-keyfile "$ME" "wrong" 1

say "5. Challenge mode (as over ssh): the module shows the token, ecpctl sign answers it"
SIGNER="sign:$ECPCTL sign --key $WORK/key/private_key.pem --passphrase-file $WORK/pass"
OUT=$(pam ecp-challenge "$ME" "$SIGNER" 1)
echo "$OUT"
SIG=$(echo "$OUT" | sed -n 's/^answered with signature: //p')

say "6. Replaying that signature on the next login is refused"
pam ecp-challenge "$ME" "$SIG" 1

say "7. The same round by hand over D-Bus, and the replay refused by the daemon"
TOKEN=$(dbus-send --bus="$BUS" --print-reply=literal --dest=org.ecp.Ecpd1 /org/ecp/Ecpd1 \
    org.ecp.Ecpd1.Auth.Challenge string:"$ME" string:sshd string:192.0.2.10 | tr -d ' ')
SIG=$("$ECPCTL" sign --key "$WORK/key/private_key.pem" --passphrase-file "$WORK/pass" "$TOKEN")
dbus-send --bus="$BUS" --print-reply --dest=org.ecp.Ecpd1 /org/ecp/Ecpd1 \
    org.ecp.Ecpd1.Auth.Verify string:"$ME" string:"$TOKEN" string:"$SIG" >/dev/null && echo "   first use: accepted"
if dbus-send --bus="$BUS" --print-reply --dest=org.ecp.Ecpd1 /org/ecp/Ecpd1 \
    org.ecp.Ecpd1.Auth.Verify string:"$ME" string:"$TOKEN" string:"$SIG" 2>&1; then
    echo "UNEXPECTED: the replay was accepted"; exit 1
fi

say "8. What the daemon logged (structured, no secrets)"
cat "$WORK/ecpd.log"

say "Done. The bus, ecpd and $WORK are gone."
