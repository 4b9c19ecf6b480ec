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


def wrk(url, method, conns, body_file=None, duration=DURATION):
    lua = os.path.join(TMP, f"wrk-{method}.lua")
    with open(lua, "w") as f:
        f.write(f'wrk.method = "{method}"\n')
        if body_file:
            f.write(f'local fh = io.open("{body_file}", "rb")\nwrk.body = fh:read("*a")\nfh:close()\n')
    threads = min(conns, 2)
    r = subprocess.run(["wrk", "-t", str(threads), "-c", str(conns), "-d", duration, "--latency", "--timeout", "30s",
                        "-s", lua, url], capture_output=True, text=True)
    return parse_wrk(r.stdout)


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1])
    return 0


def main():
    global TMP
    TMP = tempfile.mkdtemp(prefix="cutover-bench-")
    procs = []
    try:
        g, gport, key, secret = garage(TMP)
        procs.append(g)
        # cutover gateway in front of it.
        gw_port = free_port()
        cfg = os.path.join(TMP, "cutover.toml")
        open(cfg, "w").write(
            f'[state]\npath = "{TMP}/cutover.db"\n[gateway]\nlisten = "127.0.0.1:{gw_port}"\n'
            f'[[gateway.clients]]\naccess_key_id = "BENCHKEY"\nsecret_access_key_env = "BENCH_GW_SECRET"\n'
            f'[[gateway.buckets]]\nname = "app"\nmode = "active-passive"\n\n'
            f'[[backends]]\nname = "primary"\nendpoint = "http://127.0.0.1:{gport}"\nregion = "garage"\nbucket = "app-data"\n'
            f'role = "primary"\npath_style = true\ncredentials = {{ access_key_id_env = "BENCH_KEY", secret_access_key_env = "BENCH_SECRET" }}\n'
        )
        gw_secret = secrets.token_hex(20)
        env = {**os.environ, "BENCH_KEY": key, "BENCH_SECRET": secret, "BENCH_GW_SECRET": gw_secret, "CUTOVER_LOG": "warn"}
        gw = subprocess.Popen([CUTOVER, "--config", cfg, "gateway"], env=env, stderr=open(os.path.join(TMP, "gw.log"), "w"))
        procs.append(gw)
        # nginx keeping the Garage Host header (the presigned URL is made for it).
        ng_port = free_port()
        ngdir = os.path.join(TMP, "nginx")
        os.makedirs(ngdir)
        open(os.path.join(ngdir, "nginx.conf"), "w").write(
            f"worker_processes 1;\ndaemon off;\npid {ngdir}/nginx.pid;\nerror_log {ngdir}/error.log;\n"
            f"events {{ worker_connections 1024; }}\nhttp {{\n access_log off;\n client_max_body_size 0;\n"
            f" client_body_temp_path {ngdir}/body; proxy_temp_path {ngdir}/proxy;\n"
            f" proxy_request_buffering off; proxy_buffering off; proxy_http_version 1.1;\n"
            f" upstream garage {{ server 127.0.0.1:{gport}; keepalive 64; }}\n"
            f" server {{ listen 127.0.0.1:{ng_port}; location / {{ proxy_pass http://garage;"
            f" proxy_set_header Host 127.0.0.1:{gport}; proxy_set_header Connection \"\"; }} }}\n}}\n"
        )
        ng = subprocess.Popen(["nginx", "-p", ngdir, "-c", os.path.join(ngdir, "nginx.conf")])
        procs.append(ng)
        wait_port(gw_port)
        wait_port(ng_port)

        direct = s3client(f"http://127.0.0.1:{gport}", key, secret, "garage")
        via = s3client(f"http://127.0.0.1:{gw_port}", "BENCHKEY", gw_secret, "us-east-1")
        small = os.path.join(TMP, "small.bin")
        big = os.path.join(TMP, "big.bin")
        open(small, "wb").write(os.urandom(4096))
        with open(big, "wb") as f:
            f.write(os.urandom(64 << 20))
        direct.put_object(Bucket="app-data", Key="small", Body=open(small, "rb").read())
        direct.put_object(Bucket="app-data", Key="big", Body=open(big, "rb"))

        def urls(kind, key_name):
            if kind == "gateway":
                c, b, base = via, "app", f"http://127.0.0.1:{gw_port}"
            else:
                c, b, base = direct, "app-data", f"http://127.0.0.1:{gport}"
            get = c.generate_presigned_url("get_object", Params={"Bucket": b, "Key": key_name}, ExpiresIn=3600)
            put = c.generate_presigned_url("put_object", Params={"Bucket": b, "Key": key_name + "-put"}, ExpiresIn=3600)
            if kind == "nginx":
                get = get.replace(base, f"http://127.0.0.1:{ng_port}")
                put = put.replace(base, f"http://127.0.0.1:{ng_port}")
            return get, put

        results = {}
        for kind in ["direct", "gateway", "nginx"]:
            sg, sp = urls(kind, "small")
            bg, bp = urls(kind, "big")
            r = {}
            r["get4k_c1"] = wrk(sg, "GET", 1)
            r["get4k_c32"] = wrk(sg, "GET", 32)
            r["put4k_c1"] = wrk(sp, "PUT", 1, small)
            r["put4k_c32"] = wrk(sp, "PUT", 32, small)
            r["get64m_c32"] = wrk(bg, "GET", 32, None, "10s")
            r["put64m_c32"] = wrk(bp, "PUT", 32, big, "10s")
            for k in ("get64m_c32", "put64m_c32"):
                r[k]["MBps"] = r[k]["rps"] * (64 << 20) / 1e6
            results[kind] = r
            print(kind, json.dumps(r), file=sys.stderr, flush=True)
        results["gateway_peak_rss_kib"] = rss_kib(gw.pid)
        print(json.dumps(results, indent=1))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
