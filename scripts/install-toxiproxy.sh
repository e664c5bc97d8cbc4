#!/usr/bin/env bash
# Installs toxiproxy-server and toxiproxy-cli (Shopify/toxiproxy) from the Go module proxy
# into the git-ignored .tools/bin of this checkout, once. Used by the fault tests
# (tests/integration/test_toxiproxy_faults.py) through reelstream.infra.toxiproxy.
set -euo pipefail
VERSION="${TOXIPROXY_VERSION:-v2.5.0}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="$ROOT/.tools/bin"
if [[ -x "$BIN/toxiproxy-server" && -x "$BIN/toxiproxy-cli" ]]; then
  exit 0
fi
GO="$(command -v go || echo /usr/local/go/bin/go)"
if [[ ! -x "$GO" ]]; then
  echo "Go is needed to install Toxiproxy (https://go.dev/dl/)" >&2
  exit 1
fi
STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
# `go install` names binaries after their package folders (cmd/server, cmd/cli).
GOBIN="$STAGE" "$GO" install \
  "github.com/Shopify/toxiproxy/v2/cmd/server@$VERSION" \
  "github.com/Shopify/toxiproxy/v2/cmd/cli@$VERSION"
mkdir -p "$BIN"
mv "$STAGE/server" "$BIN/toxiproxy-server"
mv "$STAGE/cli" "$BIN/toxiproxy-cli"
echo "installed toxiproxy $VERSION into $BIN"
