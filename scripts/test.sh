#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the pinned nats-server if absent, checks
# formatting, lints, schemas, then runs every test (unit, proptest, sandbox, end-to-end
# against real nats-server processes on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-nats.sh
./scripts/install-old-nats.sh
# Debian's chromium and chromedriver for the dashboard's browser test (tests/dashboard_browser.rs).
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || {
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
}
# nats-py for the Python client example's test (tests/python_client.rs), into .tools/python.
[ -d .tools/python/nats ] || python3 -m pip install --quiet --disable-pip-version-check \
  --target .tools/python nats-py==2.16.0
export PAYSTATE_NATS_SERVER="$PWD/.tools/nats/bin/nats-server"
start=$(date +%s)
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo test"
status=0
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.txt || status=$?
passed=$(grep -Eo '[0-9]+ passed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' target/test-output.txt | awk '{s+=$1} END {print s+0}')
echo "suite took $(( $(date +%s) - start )) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$status" -eq 0 ]
