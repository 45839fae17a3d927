#!/usr/bin/env bash
# Sets up and runs everything on one machine: installs the pinned nats-server if absent,
# builds paystate, and runs `paystate dev` (extra arguments are passed on, e.g.
# --exit-after-demo).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-nats.sh
export PAYSTATE_NATS_SERVER="$PWD/.tools/nats/bin/nats-server"
cargo build --release -p paystate
exec ./target/release/paystate dev "$@"
