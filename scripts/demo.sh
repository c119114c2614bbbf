#!/usr/bin/env bash
# The gavel demo: a replica on random loopback ports, a signed statement
# registered and its receipt verified, a governance proposal accepted, and
# the auditor's replay of everything. Needs Go and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/gavel" ./cmd/gavel
g="$work/gavel"
step() { printf '\n== %s\n' "$*"; }

step "start a replica (embedded NATS, data in $work/data)"
"$g" serve --data "$work/data" --http 127.0.0.1:0 --nats-listen 127.0.0.1:0 --sign-interval 50ms 2>"$work/serve.log" &
pid=$!
for _ in $(seq 200); do [ -s "$work/data/endpoints.json" ] && break; sleep 0.05; done
url=$(sed -E 's/.*"http":"([^"]+)".*/\1/' "$work/data/endpoints.json")
nats=$(sed -E 's/.*"nats":"([^"]+)".*/\1/' "$work/data/endpoints.json")
echo "http $url, nats $nats"

step "make a did:x509 issuer and sign a statement"
did=$("$g" statement issuer --out "$work/issuer")
echo "issuer $did"
echo "release 1.2.3 of the demo" >"$work/payload.txt"
"$g" statement sign --key "$work/issuer/key.pem" --chain "$work/issuer/chain.pem" --issuer "$did" \
  --subject demo/release --content-type text/plain "$work/payload.txt" >"$work/statement.cose"

step "register it (an operation, polled until its receipt exists) and fetch its receipt"
txid=$("$g" statement register --url "$url" "$work/statement.cose")
echo "registered as $txid"
"$g" receipt --url "$url" --txid "$txid" >"$work/receipt.cose"
"$g" audit verify-receipt --service-cert "$work/data/service_cert.pem" "$work/receipt.cose" --statement "$work/statement.cose"
curl -sf "$url/entries/$txid/statement" >"$work/transparent.cose"
"$g" audit verify-statement --service-cert "$work/data/service_cert.pem" "$work/transparent.cose"

step "govern: member0 adds a second member (CCF's governance API, api-version 2024-07-01)"
"$g" member keygen --out "$work/keys" --name alice >/dev/null
"$g" member proposal --url "$url" set_member --arg-file cert="$work/keys/alice_cert.pem" >"$work/proposal.json"
m0=(--url "$url" --cert "$work/data/member0_cert.pem" --key "$work/data/member0_privk.pem")
id=$("$g" member propose "${m0[@]}" --json "$work/proposal.json" | sed -E 's/.*"proposalId":"([^"]+)".*/\1/')
"$g" member vote "${m0[@]}" --proposal "$id"
"$g" member proposals --url "$url"
curl -sf "$url/gov/service/members?api-version=2024-07-01"; echo

step "alice is Accepted until she acknowledges the state digest; then Active"
"$g" member ack --url "$url" --cert "$work/keys/alice_cert.pem" --key "$work/keys/alice_privk.pem"

step "stop, and replay the whole ledger as an auditor"
kill $pid; wait $pid || true
"$g" audit replay --data "$work/data"
