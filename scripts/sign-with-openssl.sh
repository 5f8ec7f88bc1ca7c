#!/usr/bin/env bash
# Signs an ecp challenge token with OpenSSL alone, as a reference for
# third-party signers (see docs/FORMAT.md, "Challenge and signature").
# usage: sign-with-openssl.sh TOKEN PRIVATE_KEY.pem [openssl -passin arg]
set -euo pipefail
token=$1 key=$2 passin=${3:-}

# base64url without padding -> standard base64 with padding
b64=$(printf '%s' "$token" | tr -- '-_' '+/')
while [ $(( ${#b64} % 4 )) -ne 0 ]; do b64="$b64="; done

signed=$(mktemp)
trap 'rm -f "$signed"' EXIT
{ printf 'ecp-login-challenge-v2\0'; printf '%s' "$b64" | base64 -d; } >"$signed"
openssl dgst -sha256 -sign "$key" ${passin:+-passin "$passin"} "$signed" | base64 -w0
echo
