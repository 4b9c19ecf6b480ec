#!/usr/bin/env bash
# cutover sync against rclone 1.60 on two real Garage nodes (loopback only).
# Usage: scripts/bench-sync.sh [SMALL_COUNT] [LARGE_COUNT]   (defaults 10000 20)
# Needs: garage (cargo install garage --locked), rclone (apt-get install -y rclone), /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v rclone >/dev/null || { echo "rclone is missing: apt-get install -y rclone" >&2; exit 2; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing: apt-get install -y time" >&2; exit 2; }
unset AWS_CA_BUNDLE
cargo build --release -p cutover
cargo run --release -p cutover-sync --example bench-sync -- target/release/cutover "$@"
