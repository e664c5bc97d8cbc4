#!/usr/bin/env bash
# Installs the Debian packages Reelstream needs when a command is missing (idempotent):
# redis-server, ffmpeg/ffprobe, a Java 17 runtime and Maven (to fetch and run Cassandra),
# openssl (`make certs`: the development CA and the mTLS certificates), the libav*-dev
# headers and pkg-config that the `vpdq` wheel (moderation) builds against, and Go
# (`make toxiproxy` installs Toxiproxy for the fault tests from the Go module proxy).
# `install-system-deps.sh bench` also installs what the video benchmark compares against:
# nginx (the reference static server) and wrk (the HTTP load tool); `install-system-deps.sh
# player` what the browser tests need: Chromium, Node.js and npm (tests/player/, tests/console/).
set -euo pipefail

declare -A package_for=(
  [redis-server]=redis-server
  [ffmpeg]=ffmpeg
  [ffprobe]=ffmpeg
  [java]=openjdk-17-jre-headless
  [mvn]=maven
  [openssl]=openssl
  [go]=golang-go
)
if [ "${1:-}" = "bench" ]; then
  package_for[nginx]=nginx-light
  package_for[wrk]=wrk
fi
if [ "${1:-}" = "player" ]; then
  package_for[chromium]=chromium
  package_for[node]=nodejs
  package_for[npm]=npm
fi
missing=()
for command in "${!package_for[@]}"; do
  if ! PATH="$PATH:/usr/sbin:/sbin:/usr/local/go/bin" command -v "$command" >/dev/null 2>&1; then
    missing+=("${package_for[$command]}")
  fi
done
# vpdq (PyPI, source only) compiles against these; checked by pkg-config module name.
for module in libavdevice libavfilter libavformat libavcodec libswresample libswscale libavutil; do
  if ! pkg-config --exists "$module" 2>/dev/null; then
    missing+=("$module-dev")
  fi
done
if ! command -v pkg-config >/dev/null 2>&1; then
  missing+=(pkg-config)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
echo "installing missing system packages: $packages"
if [ "$(id -u)" -ne 0 ]; then
  echo "not root: run 'sudo apt-get update && sudo apt-get install -y $packages'" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $packages
