#!/usr/bin/env bash
# The offline demo: what works today, shown step by step in a temporary
# directory. It changes nothing outside that directory.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building ecpctl and the demo challenge tool"
cargo build --quiet -p ecpctl
cargo build --quiet -p ecp_core --example challenge_tool
ECPCTL=$PWD/target/debug/ecpctl
TOOL=$PWD/target/debug/examples/challenge_tool

WORK=$(mktemp -d /tmp/ecp-demo.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
printf 'demo passphrase\n' >"$WORK/pass"
chmod 600 "$WORK/pass"

say "1. alice makes her key pair and certificate (the key is encrypted with scrypt + AES-256-CBC)"
"$ECPCTL" keygen --user alice --out "$WORK/alice" --passphrase-file "$WORK/pass"
ls -l "$WORK/alice"

say "2. The certificate passes the rule the daemon applies, and OpenSSL's strict check"
"$ECPCTL" cert check --user alice "$WORK/alice/certificate.pem"
openssl verify -x509_strict -CAfile "$WORK/alice/certificate.pem" "$WORK/alice/certificate.pem"

say "3. OpenSSL can read the encrypted key file with the passphrase"
openssl pkey -in "$WORK/alice/private_key.pem" -passin "file:$WORK/pass" -noout && echo "OpenSSL: key decrypted"

say "4. A server issues a one-time challenge for alice on host demo-host, service sshd"
echo "   (the daemon's job; until ecpd exists, a stateless stand-in issues it)"
TOKEN=$("$TOOL" issue alice demo-host sshd)
echo "   token: $TOKEN"

say "5. alice signs it with ecpctl sign (she sees what she approves)"
SIG=$("$ECPCTL" sign --key "$WORK/alice/private_key.pem" --passphrase-file "$WORK/pass" "$TOKEN")
echo "   signature: $SIG"

say "6. The signature verifies against alice's certificate"
"$TOOL" verify "$WORK/alice/certificate.pem" "$TOKEN" "$SIG"

say "7. The same signature is worthless for a challenge bound to another host"
OTHER=$("$TOOL" issue alice other-host sshd)
if "$TOOL" verify "$WORK/alice/certificate.pem" "$OTHER" "$SIG"; then
    echo "UNEXPECTED: accepted"; exit 1
fi

say "8. Bad input gets a clear error: wrong passphrase, and a certificate for another user"
printf 'wrong\n' >"$WORK/wrong"
"$ECPCTL" sign --key "$WORK/alice/private_key.pem" --passphrase-file "$WORK/wrong" "$TOKEN" || echo "   (exit $?)"
"$ECPCTL" cert check --user bob "$WORK/alice/certificate.pem" || echo "   (exit $?)"

say "Done. Everything above ran in $WORK, now removed."
