#!/usr/bin/env bash
# Independent clients against the running stack (`make grpc-probe`, see docs/loadtest.md):
#  1. grpcurl, through server reflection only (no .proto files): list every service of every
#     process, describe it, and call one read-only method of each service it knows;
#  2. ghz drives the batch RPC, EdgeService/SendEvents, with columnar batches of views
#     (run from the repository root: ghz reads protos/edge.proto).
# Loopback only; ghz is bounded by a request count. Exits non-zero when any call fails.
#
# Environment: PROBE_EDGES, PROBE_COUNTERS, PROBE_ORIGIN, PROBE_SPAM, PROBE_MODERATION
# (space-separated host:port; empty skips that tier),
# PROBE_OUT (results folder), GHZ_REQUESTS, GHZ_CONCURRENCY, GRPCURL, GHZ (tool paths).
# Transport: mutual TLS as the `admin` identity with the certificates of `make certs`
# (REELSTREAM_CERTS_DIR, default var/certs), or plaintext when REELSTREAM_PLAINTEXT=1 (the
# stack must run the same way; docs/security.md).
set -euo pipefail

PROBE_EDGES=${PROBE_EDGES:-"127.0.0.1:50051 127.0.0.1:50052"}
PROBE_COUNTERS=${PROBE_COUNTERS:-"127.0.0.1:50061 127.0.0.1:50062"}
PROBE_ORIGIN=${PROBE_ORIGIN:-"127.0.0.1:50071"}
PROBE_SPAM=${PROBE_SPAM-"127.0.0.1:50081"}
PROBE_MODERATION=${PROBE_MODERATION-"127.0.0.1:50091"}
PROBE_OUT=${PROBE_OUT:-results/grpc-probe}
GHZ_REQUESTS=${GHZ_REQUESTS:-2000}
GHZ_CONCURRENCY=${GHZ_CONCURRENCY:-10}
GRPCURL=${GRPCURL:-grpcurl}
GHZ=${GHZ:-ghz}
PROBE_REELS=10  # reels 1..10 are imported into the catalog so the edges accept the views

if [[ "${REELSTREAM_PLAINTEXT:-0}" =~ ^(1|true|yes|on)$ ]]; then
  GRPCURL_TLS=(-plaintext)
  GHZ_TLS=(--insecure)
else
  certs=${REELSTREAM_CERTS_DIR:-var/certs}
  for file in ca.pem admin.pem admin.key; do
    [[ -r "$certs/$file" ]] || { echo "no $certs/$file: run 'make certs'" >&2; exit 1; }
  done
  GRPCURL_TLS=(-cacert "$certs/ca.pem" -cert "$certs/admin.pem" -key "$certs/admin.key")
  GHZ_TLS=(--cacert "$certs/ca.pem" --cert "$certs/admin.pem" --key "$certs/admin.key")
fi

mkdir -p "$PROBE_OUT"
failures=0

# One read-only call per known service: method and JSON request.
probe_call() {
  case "$1" in
    grpc.health.v1.Health) echo "Check {}" ;;
    reelstream.v1.EdgeService) echo 'GetCounts {"reel_ids":["1","2"]}' ;;
    reelstream.v1.CounterService) echo "GetShardInfo {}" ;;
    reelstream.v1.OriginService) echo 'GetReels {"reel_ids":["1","2"]}' ;;
    reelstream.v1.SpamService) echo 'GetSpamReport {"reel_id":"1"}' ;;
    reelstream.v1.ModerationService) echo 'GetAuditTrail {"reel_id":"1"}' ;;
    *) echo "" ;;
  esac
}

for address in $PROBE_ORIGIN $PROBE_COUNTERS $PROBE_SPAM $PROBE_MODERATION $PROBE_EDGES; do
  echo "== $address"
  if ! services=$("$GRPCURL" "${GRPCURL_TLS[@]}" -max-time 5 "$address" list); then
    echo "   cannot list services (is the stack running? 'make run')"
    failures=$((failures + 1))
    continue
  fi
  for service in $services; do
    methods=$("$GRPCURL" "${GRPCURL_TLS[@]}" -max-time 5 "$address" describe "$service" |
      grep -c '^  rpc ' || true)
    call=$(probe_call "$service")
    if [[ -z "$call" ]]; then
      echo "   $service: $methods methods (reflection itself, or no probe call known)"
      continue
    fi
    method=${call%% *}
    request=${call#* }
    if output=$("$GRPCURL" "${GRPCURL_TLS[@]}" -max-time 5 -d "$request" "$address" \
        "$service/$method" 2>&1); then
      echo "   $service: $methods methods; $method OK ($(echo "$output" | tr -d ' \n' | cut -c1-80))"
    else
      echo "   $service: $methods methods; $method FAILED: $output"
      failures=$((failures + 1))
    fi
  done
done

# The catalog reels the batches refer to (ImportReels is idempotent).
reels=$(for r in $(seq 1 $PROBE_REELS); do
  printf '{"reel_id":"%s","state":"REEL_STATE_PUBLISHED","duration_ms":20000},' "$r"
done)
"$GRPCURL" "${GRPCURL_TLS[@]}" -max-time 10 -d "{\"reels\":[${reels%,}]}" "$PROBE_ORIGIN" \
  reelstream.v1.OriginService/ImportReels >/dev/null

# A batch of PROBE_REELS views by one viewer per request: user id "<epoch s><request number>"
# differs for every request and every run, so the dedupe window refuses nothing.
run_id=$(date +%s)
ids=$(seq -s, 1 $PROBE_REELS)
views=$(printf '"EVENT_KIND_VIEW",%.0s' $(seq 1 $PROBE_REELS))
watch=$(printf '5000,%.0s' $(seq 1 $PROBE_REELS))
users=$(for _ in $(seq 1 $PROBE_REELS); do printf '"%s{{.RequestNumber}}",' "$run_id"; done)
batch="{\"reel_ids\":[$ids],\"user_ids\":[${users%,}],\"kinds\":[${views%,}],\"watch_ms\":[${watch%,}]}"
for edge in $PROBE_EDGES; do
  name=${edge//[:.]/_}
  echo "== ghz: EdgeService/SendEvents on $edge ($GHZ_REQUESTS batches of $PROBE_REELS views, $GHZ_CONCURRENCY concurrent)"
  # ghz's reflection lookup fails against Python gRPC servers ("Symbol not found", ghz issue
  # #419) while grpcurl's works; ghz reads the contract from protos/ instead.
  if "$GHZ" "${GHZ_TLS[@]}" --proto protos/edge.proto --import-paths . \
      --call reelstream.v1.EdgeService/SendEvents -d "$batch" \
      -n "$GHZ_REQUESTS" -c "$GHZ_CONCURRENCY" --timeout 10s \
      -O json -o "$PROBE_OUT/ghz_$name.json" "$edge" &&
    python3 - "$PROBE_OUT/ghz_$name.json" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
codes = report.get("statusCodeDistribution", {})
ok = codes.get("OK", 0)
print(f"   {report['count']} calls, {report['rps']:.0f} calls/s, average "
      f"{report['average'] / 1e6:.1f} ms, status codes {codes}")
sys.exit(0 if ok == report["count"] else 1)
EOF
  then
    :
  else
    failures=$((failures + 1))
  fi
done

# gRPC status OK says nothing of refusals inside the response: the counts show what counted.
first_edge=${PROBE_EDGES%% *}
echo "== counts of reels 1 and $PROBE_REELS on $first_edge after the ghz runs:"
"$GRPCURL" "${GRPCURL_TLS[@]}" -max-time 5 -d "{\"reel_ids\":[\"1\",\"$PROBE_REELS\"]}" "$first_edge" \
  reelstream.v1.EdgeService/GetCounts | tr -d ' \n'
echo
echo "grpc-probe: $failures failure(s); ghz reports in $PROBE_OUT/"
exit $((failures > 0))
