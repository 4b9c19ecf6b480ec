"""Runs the gateway benchmark (see bench-gateway.sh). Loopback only."""

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import boto3
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUTOVER = os.path.join(ROOT, "target/release/cutover")
GARAGE = shutil.which("garage") or os.path.expanduser("~/.cargo/bin/garage")
DURATION = os.environ.get("BENCH_DURATION", "6s")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, limit=30):
    start = time.time()
    while time.time() - start < limit:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"port {port} did not open")


def garage(tmp):
    d = os.path.join(tmp, "garage")
    os.makedirs(d)
    rpc, s3, admin = free_port(), free_port(), free_port()
    cfg = os.path.join(d, "garage.toml")
    sec = secrets.token_hex(32)
    open(cfg, "w").write(
        f'metadata_dir = "{d}/meta"\ndata_dir = "{d}/data"\ndb_engine = "lmdb"\nreplication_factor = 1\n'
        f'rpc_bind_addr = "127.0.0.1:{rpc}"\nrpc_public_addr = "127.0.0.1:{rpc}"\nrpc_secret = "{sec}"\n\n'
        f'[s3_api]\ns3_region = "garage"\napi_bind_addr = "127.0.0.1:{s3}"\nroot_domain = ".s3.garage.localhost"\n\n'
        f'[admin]\napi_bind_addr = "127.0.0.1:{admin}"\nadmin_token = "{sec}"\n'
    )
    proc = subprocess.Popen([GARAGE, "-c", cfg, "server"], stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(d, "log"), "w"), env={**os.environ, "RUST_LOG": "warn"})

    def cli(*args):
        for _ in range(100):
            r = subprocess.run([GARAGE, "-c", cfg, *args], capture_output=True, text=True, env={**os.environ, "RUST_LOG": "error"})
            if r.returncode == 0:
                return r.stdout
            time.sleep(0.2)
        raise SystemExit(f"garage {args}: {r.stderr}")

    node = cli("node", "id", "-q").strip().split("@")[0]
    cli("layout", "assign", "-z", "dc1", "-c", "1G", node)
    cli("layout", "apply", "--version", "1")
    cli("bucket", "create", "app-data")
    key, secret = "GK" + secrets.token_hex(12), secrets.token_hex(32)
    cli("key", "import", "--yes", "-n", "bench", key, secret)
    cli("bucket", "allow", "--read", "--write", "--owner", "app-data", "--key", key)
    wait_port(s3)
    return proc, s3, key, secret


def s3client(endpoint, key, secret, region):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                        region_name=region, config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))


def parse_wrk(out):
    def dur(v):
        m = re.match(r"([\d.]+)(us|ms|s|m)", v)
        n, u = float(m.group(1)), m.group(2)
        return n * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[u]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = dur(re.search(r"\s50%\s+(\S+)", out).group(1))
    p99 = dur(re.search(r"\s99%\s+(\S+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non2xx": int(non2xx.group(1)) if non2xx else 0,
            "errors": errors.group(1) if errors else ""}


def wrk(url, method, conns, body_file=None, duration=DURATION, max_threads=2, pause_ms=0):
    lua = os.path.join(TMP, f"wrk-{method}.lua")
    with open(lua, "w") as f:
        f.write(f'wrk.method = "{method}"\n')
        if body_file:
            f.write(f'local fh = io.open("{body_file}", "rb")\nwrk.body = fh:read("*a")\nfh:close()\n')
        if pause_ms:
            # wrk waits this long after each answer before a connection's next request.
            f.write(f"function delay()\n  return {pause_ms}\nend\n")
    threads = min(conns, max_threads)
    r = subprocess.run(["wrk", "-t", str(threads), "-c", str(conns), "-d", duration, "--latency", "--timeout", "30s",
                        "-s", lua, url], capture_output=True, text=True)
    return parse_wrk(r.stdout)


def cpu_ns(pid):
    """CPU time of a process and its children (nginx's worker), all threads, in ns."""
    total = 0
    pids = [pid]
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            pids += [int(c) for c in open(f"/proc/{pid}/task/{t}/children").read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                total += int(open(f"/proc/{p}/task/{t}/schedstat").read().split()[0])
        except OSError:
            pass
    return total


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1])
    return 0


CASES = {
    # name: (object, method, connections, duration)
    "get4k_c1": ("small", "GET", 1, None),
    "get4k_c32": ("small", "GET", 32, None),
    "put4k_c1": ("small", "PUT", 1, None),
    "put4k_c32": ("small", "PUT", 32, None),
    "get64m_c32": ("big", "GET", 32, "10s"),
    "put64m_c32": ("big", "PUT", 32, "10s"),
}


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def parse_args(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat every case this many times; targets run side by side within a round, "
                         "in an order rotated each round")
    ap.add_argument("--small-only", action="store_true", help="skip the 64 MiB cases")
    ap.add_argument("--cases", help="comma-separated subset of " + ",".join(CASES))
    ap.add_argument("--gateway", action="append", metavar="NAME=BINARY",
                    help="a cutover binary to run as a gateway (repeatable, e.g. base=/tmp/cutover-old); "
                         "default: gateway=target/release/cutover")
    ap.add_argument("--nginx-workers", type=int, default=1, metavar="N",
                    help="nginx's worker_processes (default 1, one event loop; the gateway runs one worker "
                         "thread per core, so N = the number of cores compares the same shape)")
    ap.add_argument("--wrk-threads", type=int, default=2, metavar="N",
                    help="wrk's threads (default 2, at most one per connection); 1 leaves a core to the proxy, "
                         "as the alternated CPU runs in docs/bench-gateway.md do")
    ap.add_argument("--pause-ms", type=int, default=0, metavar="MS",
                    help="small objects: each connection waits MS ms after an answer before its next request "
                         "(default 0: as fast as answers come). Paced, every target gets nearly the same "
                         "request rate, below what Garage can take, so the proxies' CPU per request is "
                         "compared at a matched rate rather than at Garage's varying throughput")
    ap.add_argument("--json", help="also write every run to this file")
    return ap.parse_args(argv)


def start_gateway(name, binary, gport, key, secret):
    gw_port = free_port()
    cfg = os.path.join(TMP, f"cutover-{name}.toml")
    open(cfg, "w").write(
        f'[state]\npath = "{TMP}/cutover-{name}.db"\n[gateway]\nlisten = "127.0.0.1:{gw_port}"\n'
        f'[[gateway.clients]]\naccess_key_id = "BENCHKEY"\nsecret_access_key_env = "BENCH_GW_SECRET"\n'
        f'[[gateway.buckets]]\nname = "app"\nmode = "active-passive"\n\n'
        f'[[backends]]\nname = "primary"\nendpoint = "http://127.0.0.1:{gport}"\nregion = "garage"\nbucket = "app-data"\n'
        f'role = "primary"\npath_style = true\ncredentials = {{ access_key_id_env = "BENCH_KEY", secret_access_key_env = "BENCH_SECRET" }}\n'
    )
    gw_secret = secrets.token_hex(20)
    env = {**os.environ, "BENCH_KEY": key, "BENCH_SECRET": secret, "BENCH_GW_SECRET": gw_secret, "CUTOVER_LOG": "warn"}
    proc = subprocess.Popen([binary, "--config", cfg, "gateway"], env=env,
                            stderr=open(os.path.join(TMP, f"gw-{name}.log"), "w"))
    return proc, gw_port, gw_secret


def main():
    global TMP
    args = parse_args(sys.argv[1:])
    gateways = []
    for g in args.gateway or [f"gateway={CUTOVER}"]:
        name, _, binary = g.partition("=")
        if not binary or name in ("direct", "nginx"):
            raise SystemExit(f"--gateway wants NAME=BINARY with a name other than direct/nginx, got {g!r}")
        gateways.append((name, os.path.abspath(binary)))
    if args.nginx_workers < 1:
        raise SystemExit(f"--nginx-workers wants at least 1, got {args.nginx_workers}")
    if args.wrk_threads < 1:
        raise SystemExit(f"--wrk-threads wants at least 1, got {args.wrk_threads}")
    if not 0 <= args.pause_ms <= 10_000:
        raise SystemExit(f"--pause-ms wants 0 to 10000, got {args.pause_ms}")
    if not re.fullmatch(r"[1-9][0-9]*s", DURATION):
        raise SystemExit(f"BENCH_DURATION wants whole seconds such as 6s, got {DURATION!r}")
    cases = args.cases.split(",") if args.cases else list(CASES)
    if args.small_only:
        cases = [c for c in cases if CASES[c][0] == "small"]
    for c in cases:
        if c not in CASES:
            raise SystemExit(f"unknown case {c}")
    TMP = tempfile.mkdtemp(prefix="cutover-bench-")
    procs = []
    try:
        g, gport, key, secret = garage(TMP)
        procs.append(g)
        # cutover gateways in front of it.
        gws = {}
        for name, binary in gateways:
            proc, port, gw_secret = start_gateway(name, binary, gport, key, secret)
            procs.append(proc)
            gws[name] = (proc, port, gw_secret)
        # nginx keeping the Garage Host header (the presigned URL is made for it).
        ng_port = free_port()
        ngdir = os.path.join(TMP, "nginx")
        os.makedirs(ngdir)
        open(os.path.join(ngdir, "nginx.conf"), "w").write(
            f"worker_processes {args.nginx_workers};\ndaemon off;\npid {ngdir}/nginx.pid;\nerror_log {ngdir}/error.log;\n"
            f"events {{ worker_connections 1024; }}\nhttp {{\n access_log off;\n client_max_body_size 0;\n"
            f" client_body_temp_path {ngdir}/body; proxy_temp_path {ngdir}/proxy;\n"
            f" proxy_request_buffering off; proxy_buffering off; proxy_http_version 1.1;\n"
            f" upstream garage {{ server 127.0.0.1:{gport}; keepalive 64; }}\n"
            f" server {{ listen 127.0.0.1:{ng_port}; location / {{ proxy_pass http://garage;"
            f" proxy_set_header Host 127.0.0.1:{gport}; proxy_set_header Connection \"\"; }} }}\n}}\n"
        )
        ng = subprocess.Popen(["nginx", "-p", ngdir, "-c", os.path.join(ngdir, "nginx.conf")])
        procs.append(ng)
        for _, port, _ in gws.values():
            wait_port(port)
        wait_port(ng_port)

        direct = s3client(f"http://127.0.0.1:{gport}", key, secret, "garage")
        small = os.path.join(TMP, "small.bin")
        big = os.path.join(TMP, "big.bin")
        open(small, "wb").write(os.urandom(4096))
        direct.put_object(Bucket="app-data", Key="small", Body=open(small, "rb").read())
        if any(CASES[c][0] == "big" for c in cases):
            with open(big, "wb") as f:
                f.write(os.urandom(64 << 20))
            direct.put_object(Bucket="app-data", Key="big", Body=open(big, "rb"))

        def urls(kind, key_name):
            if kind in gws:
                _, port, gw_secret = gws[kind]
                base = f"http://127.0.0.1:{port}"
                c, b = s3client(base, "BENCHKEY", gw_secret, "us-east-1"), "app"
            else:
                c, b, base = direct, "app-data", f"http://127.0.0.1:{gport}"
            get = c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": key_name}, ExpiresIn=3600 * 24)
            put = c.generate_presigned_url("put_object", Params={"Bucket": b, "Key": key_name + "-put"},
                                           ExpiresIn=3600 * 24)
            if kind == "nginx":
                get = get.replace(base, f"http://127.0.0.1:{ng_port}")
                put = put.replace(base, f"http://127.0.0.1:{ng_port}")
            return {"GET": get, "PUT": put}

        kinds = ["direct", *gws, "nginx"]
        url = {k: {"small": urls(k, "small"), "big": urls(k, "big")} for k in kinds}
        runs = {k: {c: [] for c in cases} for k in kinds}
        for rnd in range(args.rounds):
            order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]
            for c in cases:
                obj, method, conns, duration = CASES[c]
                for k in order:
                    proxy = gws[k][0].pid if k in gws else ng.pid if k == "nginx" else None
                    cpu0, gcpu0 = (cpu_ns(proxy) if proxy else 0), cpu_ns(g.pid)
                    r = wrk(url[k][obj][method], method, conns, small if (method == "PUT" and obj == "small")
                            else big if method == "PUT" else None, duration or DURATION, args.wrk_threads,
                            args.pause_ms if obj == "small" else 0)
                    r["round"] = rnd
                    reqs = r["rps"] * float((duration or DURATION).rstrip("s"))
                    if proxy and reqs:
                        r["proxy_cpu_us"] = (cpu_ns(proxy) - cpu0) / 1000 / reqs
                    if reqs:
                        r["garage_cpu_us"] = (cpu_ns(g.pid) - gcpu0) / 1000 / reqs
                    if obj == "big":
                        r["MBps"] = r["rps"] * (64 << 20) / 1e6
                    runs[k][c].append(r)
                    print(f"round {rnd} {c} {k}: {json.dumps(r)}", file=sys.stderr, flush=True)
        rss = {name: rss_kib(p.pid) for name, (p, _, _) in gws.items()}
        if args.pause_ms:
            print(f"Paced: each connection waits {args.pause_ms} ms after an answer (small objects).\n")
        report(kinds, list(gws), cases, runs, rss, args.rounds)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"runs": runs, "gateway_peak_rss_kib": rss}, f, indent=1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(TMP, ignore_errors=True)


def report(kinds, gw_names, cases, runs, rss, rounds):
    """Markdown: medians per target, then per-round ratios (each gateway vs
    direct, nginx and the other gateways, taken within the same round)."""
    def cell(rs):
        big = "MBps" in rs[0]
        v = median([r["MBps" if big else "rps"] for r in rs])
        bad = sum(r["non2xx"] for r in rs)
        errs = [r["errors"] for r in rs if r["errors"]]
        s = f"{v:,.0f} MB/s" if big else f"{v:,.0f} (p50 {median([r['p50_ms'] for r in rs]):.2f}, p99 {median([r['p99_ms'] for r in rs]):.1f})"
        if bad:
            s += f" [{bad} non-2xx]"
        if errs:
            s += f" [errors: {'; '.join(errs)}]"
        return s
    print(f"Medians of {rounds} round(s): req/s (p50 ms, p99 ms) for small objects, MB/s for 64 MiB.\n")
    print("| case | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for c in cases:
        print(f"| {c} | " + " | ".join(cell(runs[k][c]) for k in kinds) + " |")
    def ratios(title, others, field):
        """Per-round ratios of `field` of each gateway to each of `others`."""
        print(f"\nPer-round {title} ratios, median [min–max] over the rounds:\n")
        cols = [(g, o) for g in gw_names for o in others if o != g]
        print("| case | " + " | ".join(f"{g} / {o}" for g, o in cols) + " |")
        print("|---|" + "---|" * len(cols))
        for c in cases:
            cells = []
            for g, o in cols:
                rs = [a[field] / b[field] for a, b in zip(runs[g][c], runs[o][c]) if field in a and b.get(field)]
                cells.append(f"{median(rs):.2f}× [{min(rs):.2f}–{max(rs):.2f}]" if rs else "-")
            print(f"| {c} | " + " | ".join(cells) + " |")

    ratios("throughput", ["direct", "nginx", *gw_names], "rps")
    print("\nCPU per request (µs, median over the rounds): the proxy's own / Garage's:\n")
    print("| case | " + " | ".join(kinds) + " |")
    print("|---|" + "---|" * len(kinds))
    for c in cases:
        cells = []
        for k in kinds:
            p = [r["proxy_cpu_us"] for r in runs[k][c] if "proxy_cpu_us" in r]
            gc = [r["garage_cpu_us"] for r in runs[k][c] if "garage_cpu_us" in r]
            cells.append((f"{median(p):.0f} / " if p else "- / ") + (f"{median(gc):.0f}" if gc else "-"))
        print(f"| {c} | " + " | ".join(cells) + " |")
    ratios("proxy CPU per request", [*gw_names, "nginx"], "proxy_cpu_us")
    print("\nPer-round p50 added by each gateway over direct / nginx (ms), median over the rounds:\n")
    for g in gw_names:
        for c in cases:
            if CASES[c][0] != "small":
                continue
            d = [a["p50_ms"] - b["p50_ms"] for a, b in zip(runs[g][c], runs["direct"][c])]
            n = [a["p50_ms"] - b["p50_ms"] for a, b in zip(runs[g][c], runs["nginx"][c])]
            print(f"- {g} {c}: {median(d):+.2f} / {median(n):+.2f}")
    for g, kib in rss.items():
        print(f"\n{g} peak RSS (VmHWM): {kib / 1024:.1f} MiB ({kib:,} KiB)")


if __name__ == "__main__":
    main()
