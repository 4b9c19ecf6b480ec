#!/bin/sh
# Runs one fuzz target for SECONDS (default 600) at the lowest priority;
# the log goes to fuzz/logs/TARGET-<time>.log. See docs/fuzzing.md.
set -eu
t=$1; secs=${2:-600}
cd "$(dirname "$0")"
mkdir -p logs corpus/"$t"
log=logs/$t-$(date -u +%Y%m%dT%H%M%SZ).log
nice -n 19 cargo +nightly fuzz run -a -s none "$t" corpus/"$t" -- \
  -max_total_time="$secs" -max_len=8192 -timeout=25 -print_final_stats=1 >"$log" 2>&1 || true
echo "$log"
