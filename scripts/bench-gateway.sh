#!/bin/sh
# Gateway benchmark: direct Garage vs `cutover gateway` vs nginx reverse proxy,
# on loopback, with wrk and presigned URLs. Needs garage, nginx, wrk, python3
# with boto3. Builds the release binary first. Writes the table to stdout.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p cutover
exec python3 scripts/bench_gateway.py "$@"
