#!/usr/bin/env bash
# Release build of cutover with profile-guided optimisation (PGO).
#
#   scripts/build-pgo.sh            -> target/pgo/cutover
#
# 1. Builds an instrumented release binary (target/pgo/gen).
# 2. Trains it on loopback against real Garage: the gateway benchmark's
#    small cases (PUT on the fast path, GET through hyper), a bulk sync of
#    small objects (a copy, a no-op resync, changed objects) and a detection
#    trial (probes, health, decision). Per-request work only: byte loops of
#    64 MiB streams would take nearly all of the profile's counts, and the
#    request paths would no longer count as hot (measured: a training with
#    them gained a third of what this one gains).
# 3. Merges the profiles with llvm-profdata of rustc's own LLVM version.
# 4. Builds the release binary with them (target/pgo/use) and copies it to
#    target/pgo/cutover.
#
# Same code, same semantics as `cargo build --release`; the compiler lays out
# and inlines the paths the training ran as hot. Measured: about 10 % less
# CPU per small gateway request (docs/bench-gateway.md, "Profile-guided
# optimisation"). Takes two release builds plus ~4 minutes of training.
#
# Needs what the benchmarks need (garage, nginx, wrk, rclone, /usr/bin/time,
# python3 with boto3) and llvm-profdata of rustc's LLVM major version
# (Debian: apt-get install llvm-22 for rustc 1.95).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/target/pgo

fail() { echo "build-pgo: $*" >&2; exit 2; }

llvm=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\)\..*/\1/p')
[ -n "$llvm" ] || fail "cannot read rustc's LLVM version from 'rustc -vV'"
profdata=""
for p in "llvm-profdata-$llvm" "/usr/lib/llvm-$llvm/bin/llvm-profdata"; do
  if command -v "$p" >/dev/null 2>&1; then profdata=$(command -v "$p"); break; fi
done
[ -n "$profdata" ] || fail "llvm-profdata for LLVM $llvm is missing (Debian: apt-get install llvm-$llvm)"
for tool in garage nginx wrk rclone /usr/bin/time python3; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/$tool" ] \
    || fail "$tool is missing (the training runs the benchmarks; see README, 'Benchmarks')"
done
python3 -c 'import boto3' 2>/dev/null || fail "python3's boto3 is missing (pip install boto3)"

step() { printf '\n== build-pgo: %s\n' "$*" >&2; }

profiles=$out/profiles
rm -rf "$profiles"
mkdir -p "$profiles"

step "instrumented build (target/pgo/gen)"
export CARGO_TARGET_DIR=$out/gen
# Two builds: one with both packages would unify their dependencies'
# features, and the binary trained would not be the binary optimised
# (measured: most of the gain lost).
RUSTFLAGS="-Cprofile-generate=$profiles" cargo build --release -p cutover --bin cutover
RUSTFLAGS="-Cprofile-generate=$profiles" cargo build --release -p cutover-sync --example bench-sync
gen=$out/gen/release/cutover

# Every instrumented process (the gateway, `cutover sync`, the `cutover run`
# children of `bench detect`, the bench-sync driver) writes its own profile.
export LLVM_PROFILE_FILE="$profiles/%m-%p.profraw"
export CUTOVER_LOG=warn
unset AWS_CA_BUNDLE

step "training: the gateway benchmark's cases"
BENCH_DURATION=${PGO_TRAIN_DURATION:-3s} python3 scripts/bench_gateway.py --rounds 1 --small-only --gateway "pgo=$gen" >&2

step "training: bulk sync"
"$out/gen/release/examples/bench-sync" "$gen" 1000 0 >&2

step "training: detection"
"$gen" bench detect --trials 1 --kinds sigkill >&2

unset CARGO_TARGET_DIR LLVM_PROFILE_FILE
ls "$profiles"/*.profraw >/dev/null 2>&1 || fail "the training wrote no profile to $profiles"

step "merging $(ls "$profiles"/*.profraw | wc -l) profiles"
rm -f "$out"/merged-*.profdata
"$profdata" merge -o "$out/merged.profdata" "$profiles"
# Named by its content: cargo does not see a file's change behind an
# unchanged RUSTFLAGS, a new name makes it build again.
merged=$out/merged-$(sha256sum "$out/merged.profdata" | cut -c1-16).profdata
mv "$out/merged.profdata" "$merged"

step "optimised build (target/pgo/use)"
CARGO_TARGET_DIR=$out/use RUSTFLAGS="-Cprofile-use=$merged" \
  cargo build --release -p cutover --bin cutover
cp "$out/use/release/cutover" "$out/cutover"
step "done: $out/cutover"
