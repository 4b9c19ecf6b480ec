#!/usr/bin/env bash
# Measures RTO, lost writes and false failovers with `cutover drill --lab`:
# two local Garage backends, an in-process chaos proxy in front of the
# primary, the real controller, runbook engine and gateway. N runs per
# scenario (default 10); hard-down twice: with the built-in (gateway-only)
# runbook and with a full runbook (switch, git.set on a local bare repository,
# a webhook to a local receiver, validate, notify).
# Usage: scripts/bench-drills.sh [RUNS] [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-10}
out=${2:-target/drill-bench}
mkdir -p "$out"
cargo build --release -q
bin=target/release/cutover
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

# A bare infra repository and a webhook receiver for the full runbook.
git init -q --bare -b main "$tmp/infra.git"
git init -q -b main "$tmp/seed"
mkdir -p "$tmp/seed/infra" && printf '{\n  "active_provider": "primary"\n}\n' >"$tmp/seed/infra/vars.json"
git -C "$tmp/seed" add . && git -C "$tmp/seed" -c user.name=b -c user.email=b@b commit -qm initial
git -C "$tmp/seed" push -q "$tmp/infra.git" main
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 - "$port" <<'PY' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
cat >"$tmp/full.toml" <<TOML
[[steps]]
name = "switch the gateway"
uses = "state.switch"
with = { to = "{{ target }}" }

[[steps]]
name = "terraform vars"
uses = "git.set"
with = { repo = "$tmp/infra.git", file = "infra/vars.json", key = "active_provider", value = "{{ target }}", branch = "main", message = "cutover: {{ kind }} to {{ target }} ({{ incident.id }})" }
undo = { uses = "git.set", with = { repo = "$tmp/infra.git", file = "infra/vars.json", key = "active_provider", value = "{{ source }}", branch = "main" } }

[[steps]]
name = "tell argo"
uses = "http"
with = { method = "POST", url = "http://127.0.0.1:$port/hook", body = '{"incident": "{{ incident.id }}"}', expect_status = 200 }

[[steps]]
name = "smoke test"
uses = "validate"
with = { backend = "{{ target }}" }

[[steps]]
name = "tell the team"
uses = "notify"
with = { url = "http://127.0.0.1:$port/chat" }
TOML

drill() { # name args...
  local name=$1; shift
  echo "== $name"
  "$bin" drill --lab --runs "$runs" --report "$out/$name" "$@" >"$out/$name.log" 2>&1 || true
  grep -h '^[0-9]* runs\|^Objectives\|^- ' "$out/$name"/*.md || tail -5 "$out/$name.log"
}
drill hard-down-gateway-only --scenario hard-down
drill hard-down-full-runbook --scenario hard-down --failover-runbook "$tmp/full.toml"
drill slowdown --scenario slowdown
drill blip --scenario blip
drill brownout --scenario brownout
drill flapping --scenario flapping
echo "reports in $out/*/drill-*.md"
