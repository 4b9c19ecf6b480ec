#!/bin/sh
# Gateway benchmark: direct Garage vs `cutover gateway` vs nginx reverse proxy,
# on loopback, with wrk and presigned URLs. Needs garage, nginx, wrk, python3
# with boto3. Builds the release binary first. Writes the table to stdout.
#
# Options (see scripts/bench_gateway.py --help): --rounds N repeats every case
# with the targets side by side (order rotated each round) and reports medians
# and per-round ratios; --small-only skips the 64 MiB cases; --gateway
# NAME=BINARY (repeatable) runs several cutover builds at once, e.g. the
# previous release against this one; --json FILE keeps every run; --pause-ms MS
# paces the small-object runs (each connection waits MS ms after an answer), so
# every target is measured at nearly the same request rate.
# BENCH_DURATION (default 6s) sets the length of each small-object run.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -p cutover
exec python3 scripts/bench_gateway.py "$@"
