#!/usr/bin/env bash
# Unpacks Debian's nats-server 2.9.10 (older than paystate's minimum) into .tools/nats-old,
# for the test that paystate refuses old servers. Nothing is installed system-wide and no
# service is started (the .deb is only unpacked).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=".tools/nats-old/usr/sbin/nats-server"
[ -x "$bin" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && apt-get download nats-server >/dev/null 2>&1); then
  apt-get update -qq >/dev/null 2>&1 || true
  (cd "$tmp" && apt-get download nats-server >/dev/null 2>&1)
fi
mkdir -p .tools/nats-old
dpkg -x "$tmp"/nats-server_*.deb .tools/nats-old
"$bin" --version >&2
