#!/usr/bin/env bash
# The OpenAPI document checked against the running service by schemathesis (PyPI):
#
#   contract.sh RELANCE_BINARY [EXAMPLES_PER_OPERATION]
#
# A working folder made by `relance init` with the sample ledger, `relance serve` on a
# free loopback port, an admin token; then every operation of docs/openapi.json is
# called with generated requests (valid and invalid), and the run fails on any 5xx
# answer, any answer whose body breaks the document's schema, or whose content type is
# not one the document gives. Nothing is sent for real: the embedded channels write to
# the outbox folder.
set -euo pipefail

BIN=$(realpath "${1:?usage: contract.sh RELANCE_BINARY [EXAMPLES]}")
EXAMPLES=${2:-10}
REPO=$(cd "$(dirname "$0")/../.." && pwd)
DIR=$(mktemp -d /tmp/relance-contract.XXXXXX)
cd "$DIR"

"$BIN" init . >/dev/null
for f in customers invoices payments; do
  "$BIN" import "$f" "examples/$f.csv" >/dev/null
done
"$BIN" tick >/dev/null
TOKEN=$("$BIN" tokens create --name contract --scope admin 2>/dev/null)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" serve --listen "127.0.0.1:$PORT" >serve.log 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done

status=0
st run "$REPO/docs/openapi.json" \
  --url "http://127.0.0.1:$PORT" \
  --header "Authorization: Bearer $TOKEN" \
  --max-examples "$EXAMPLES" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --phases examples,coverage,fuzzing \
  --generation-database none \
  --seed 20261204 \
  --no-color \
  --warnings off || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- the service's log (last 80 lines)" >&2
  tail -n 80 serve.log >&2
fi
exit "$status"
