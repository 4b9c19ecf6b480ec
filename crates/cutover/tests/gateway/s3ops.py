"""Drives the cutover gateway with boto3 (and urllib for presigned URLs).

Usage: s3ops.py SCENARIO [ARGS...]; connection settings come from the
environment: GW_ENDPOINT, GW_KEY, GW_SECRET, GW_BUCKET, GW_CA (the CA bundle
to trust over HTTPS; default: the system's). Prints one JSON
object on the last line; exits non-zero with a message on failure.
"""

import hashlib
import io
import json
import os
import sys
import urllib.error
import urllib.request

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError


def client(key=None, secret=None, unsigned=False, endpoint=None, checksums=None):
    cfg = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        signature_version=UNSIGNED if unsigned else "s3v4",
    )
    if checksums:
        cfg = cfg.merge(Config(request_checksum_calculation=checksums))
    return boto3.client(
        "s3",
        endpoint_url=endpoint or os.environ["GW_ENDPOINT"],
        aws_access_key_id=key or os.environ["GW_KEY"],
        aws_secret_access_key=secret or os.environ["GW_SECRET"],
        region_name=os.environ.get("GW_REGION", "us-east-1"),
        config=cfg,
        verify=os.environ.get("GW_CA", True),
    )


B = os.environ.get("GW_BUCKET", "app")


def backend(resp):
    return resp["ResponseMetadata"]["HTTPHeaders"].get("x-cutover-backend")


def code(fn):
    try:
        fn()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    return None, 200


def check(cond, msg):
    if not cond:
        raise SystemExit("FAILED: " + msg)


def matrix():
    s3 = client()
    out = {}
    data = os.urandom(4096)
    r = s3.put_object(Bucket=B, Key="dir/a b+c.txt", Body=data, ContentType="text/x-test", Metadata={"color": "blue"})
    etag = r["ETag"]
    check(etag.strip('"') == hashlib.md5(data).hexdigest(), "ETag is the MD5")
    out["put_backend"] = backend(r)
    g = s3.get_object(Bucket=B, Key="dir/a b+c.txt")
    check(g["Body"].read() == data, "GET returns the data")
    check(g["ETag"] == etag, "GET ETag")
    check(g["ContentType"] == "text/x-test", "content type kept")
    check(g["Metadata"] == {"color": "blue"}, "metadata kept: %r" % g["Metadata"])
    out["get_backend"] = backend(g)
    h = s3.head_object(Bucket=B, Key="dir/a b+c.txt")
    check(h["ContentLength"] == 4096 and h["ETag"] == etag, "HEAD size and ETag")
    rg = s3.get_object(Bucket=B, Key="dir/a b+c.txt", Range="bytes=10-19")
    check(rg["Body"].read() == data[10:20] and rg["ResponseMetadata"]["HTTPStatusCode"] == 206, "Range")
    check(code(lambda: s3.get_object(Bucket=B, Key="dir/a b+c.txt", IfNoneMatch=etag))[1] == 304, "If-None-Match")
    check(code(lambda: s3.get_object(Bucket=B, Key="dir/a b+c.txt", IfMatch='"nope"'))[1] == 412, "If-Match")
    check(code(lambda: s3.get_object(Bucket=B, Key="missing"))[0] == "NoSuchKey", "NoSuchKey passes through")
    # Checksums computed by boto3 (CRC32 by default, SHA256 asked) reach the backend.
    s3.put_object(Bucket=B, Key="sum", Body=b"checksummed", ChecksumAlgorithm="SHA256")
    check(s3.get_object(Bucket=B, Key="sum")["Body"].read() == b"checksummed", "checksummed PUT")
    # Copy within the gateway bucket.
    s3.copy_object(Bucket=B, Key="dir/copy", CopySource={"Bucket": B, "Key": "dir/a b+c.txt"})
    check(s3.get_object(Bucket=B, Key="dir/copy")["Body"].read() == data, "CopyObject")
    # Listings (v2 and v1) name the client's bucket.
    l2 = s3.list_objects_v2(Bucket=B, Prefix="dir/")
    keys = sorted(o["Key"] for o in l2["Contents"])
    check(keys == ["dir/a b+c.txt", "dir/copy"], "ListObjectsV2 keys: %r" % keys)
    check(l2["Name"] == B, "ListObjectsV2 names the client bucket: %r" % l2["Name"])
    l1 = s3.list_objects(Bucket=B, Prefix="dir/", Delimiter="/")
    check(len(l1["Contents"]) == 2 and l1["Name"] == B, "ListObjects v1")
    # Multipart: create, two parts, list parts, complete; abort another.
    mp = s3.create_multipart_upload(Bucket=B, Key="big", ContentType="application/x-big")
    check(mp["Bucket"] == B, "CreateMultipartUpload names the client bucket")
    p1, p2 = os.urandom(5 * 1024 * 1024), os.urandom(1024 * 1024 + 7)
    e1 = s3.upload_part(Bucket=B, Key="big", UploadId=mp["UploadId"], PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=B, Key="big", UploadId=mp["UploadId"], PartNumber=2, Body=p2)["ETag"]
    lp = s3.list_parts(Bucket=B, Key="big", UploadId=mp["UploadId"])
    check([p["PartNumber"] for p in lp["Parts"]] == [1, 2], "ListParts")
    c = s3.complete_multipart_upload(
        Bucket=B, Key="big", UploadId=mp["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    out["complete_backend"] = backend(c)
    big = s3.get_object(Bucket=B, Key="big")
    check(big["Body"].read() == p1 + p2, "multipart object content")
    ab = s3.create_multipart_upload(Bucket=B, Key="aborted")
    s3.abort_multipart_upload(Bucket=B, Key="aborted", UploadId=ab["UploadId"])
    # The transfer manager (what `aws s3 cp` uses): 12 MiB in 5 MiB parts.
    blob = os.urandom(12 * 1024 * 1024)
    from boto3.s3.transfer import TransferConfig
    s3.upload_fileobj(io.BytesIO(blob), B, "managed", Config=TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024))
    got = io.BytesIO()
    s3.download_fileobj(B, "managed", got)
    check(got.getvalue() == blob, "upload_fileobj/download_fileobj round trip")
    # Presigned URLs, GET and PUT.
    url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "dir/copy"}, ExpiresIn=300)
    check(urllib.request.urlopen(url).read() == data, "presigned GET")
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": B, "Key": "presigned"}, ExpiresIn=300)
    req = urllib.request.Request(put_url, data=b"via presigned PUT", method="PUT")
    check(urllib.request.urlopen(req).status == 200, "presigned PUT")
    check(s3.get_object(Bucket=B, Key="presigned")["Body"].read() == b"via presigned PUT", "presigned PUT content")
    bad = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    try:
        urllib.request.urlopen(bad)
        check(False, "a tampered presigned URL is refused")
    except urllib.error.HTTPError as e:
        check(e.code == 403 and b"SignatureDoesNotMatch" in e.read(), "tampered presigned URL: 403 SignatureDoesNotMatch")
    # Deletes: one, then several at once.
    s3.delete_object(Bucket=B, Key="dir/copy")
    check(code(lambda: s3.head_object(Bucket=B, Key="dir/copy"))[1] == 404, "deleted")
    d = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "sum"}, {"Key": "presigned"}]})
    check(sorted(x["Key"] for x in d.get("Deleted", [])) == ["presigned", "sum"], "DeleteObjects: %r" % d)
    check(code(lambda: s3.head_object(Bucket=B, Key="sum"))[1] == 404, "DeleteObjects deleted")
    out["buckets"] = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    return out


def tls(multipart_checksums="when_supported"):
    """Over HTTPS: PUT, GET, a managed multipart upload (its client with
    request_checksum_calculation = MULTIPART_CHECKSUMS), list, a presigned GET
    (urllib, trusting GW_CA), deletes. Reports the payload form botocore chose
    for each upload request (x-amz-content-sha256, x-amz-trailer; for
    CreateMultipartUpload, x-amz-checksum-algorithm) and the CRC32 each
    object has on the backend (checked for the single PUT)."""
    import ssl
    from boto3.s3.transfer import TransferConfig
    forms = {}

    def record(request, event_name, **kwargs):
        op = event_name.rsplit(".", 1)[-1]
        h = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}
        if op in ("PutObject", "UploadPart"):
            forms.setdefault(op, set()).add((h.get("x-amz-content-sha256"), h.get("x-amz-trailer")))
        elif op == "CreateMultipartUpload":
            forms.setdefault(op, set()).add((h.get("x-amz-checksum-algorithm"),))

    s3, mp = client(), client(checksums=multipart_checksums)
    for c in (s3, mp):
        c.meta.events.register("before-send.s3", record)
    out = {}
    data = os.urandom(100 * 1024 + 3)
    r = s3.put_object(Bucket=B, Key="tls/small", Body=data)
    check(r["ETag"].strip('"') == hashlib.md5(data).hexdigest(), "ETag is the MD5")
    out["put_backend"] = backend(r)
    check(s3.get_object(Bucket=B, Key="tls/small")["Body"].read() == data, "GET returns the data")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        src, back = os.path.join(d, "src"), os.path.join(d, "back")
        blob = os.urandom(12 * 1024 * 1024)
        with open(src, "wb") as f:
            f.write(blob)
        mib5 = 5 * 1024 * 1024
        try:
            mp.upload_file(src, B, "tls/big", Config=TransferConfig(multipart_threshold=mib5, multipart_chunksize=mib5))
        except Exception as e:  # noqa: BLE001 - reported with what was sent
            raise SystemExit("FAILED: multipart upload_file: %s; payload forms sent: %r" % (e, forms))
        s3.download_file(B, "tls/big", back)
        with open(back, "rb") as f:
            check(f.read() == blob, "multipart upload_file/download_file round trip")
    etag = s3.head_object(Bucket=B, Key="tls/big")["ETag"]
    check(etag.strip('"').endswith("-3"), "three parts: %s" % etag)
    # The CRC32 the backend stored (HeadObject with ChecksumMode=ENABLED).
    import base64
    import zlib
    sums = {k: s3.head_object(Bucket=B, Key=k, ChecksumMode="ENABLED").get("ChecksumCRC32") for k in ("tls/small", "tls/big")}
    check(sums["tls/small"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode(), "CRC32 of tls/small: %r" % sums)
    out["checksums"] = sums
    out["keys"] = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=B, Prefix="tls/")["Contents"])
    url = s3.generate_presigned_url("get_object", Params={"Bucket": B, "Key": "tls/small"}, ExpiresIn=300)
    check(url.startswith("https://"), "presigned URL is https: " + url)
    ctx = ssl.create_default_context(cafile=os.environ["GW_CA"])
    check(urllib.request.urlopen(url, context=ctx).read() == data, "presigned GET over https")
    s3.delete_object(Bucket=B, Key="tls/small")
    s3.delete_object(Bucket=B, Key="tls/big")
    check(code(lambda: s3.head_object(Bucket=B, Key="tls/small"))[1] == 404, "deleted")
    check("Contents" not in s3.list_objects_v2(Bucket=B, Prefix="tls/"), "nothing left under tls/")
    out["forms"] = {op: sorted([list(f) for f in v]) for op, v in forms.items()}
    return out


def untrusted():
    """A client that does not trust the gateway's CA: the handshake fails."""
    from botocore.exceptions import SSLError
    try:
        client().list_objects_v2(Bucket=B)
    except SSLError as e:
        return {"error": "SSLError", "detail": str(e)[:300]}
    raise SystemExit("FAILED: the request succeeded without trusting the CA")


def auth():
    out = {}
    out["wrong_secret"] = code(lambda: client(secret="not-the-secret").list_objects_v2(Bucket=B))
    out["unknown_key"] = code(lambda: client(key="NOSUCHKEY").list_objects_v2(Bucket=B))
    out["anonymous"] = code(lambda: client(unsigned=True).get_object(Bucket=B, Key="x"))
    out["anonymous_put"] = code(lambda: client(unsigned=True).put_object(Bucket=B, Key="x", Body=b"x"))
    return out


def put(key, text):
    r = client().put_object(Bucket=B, Key=key, Body=text.encode())
    return {"backend": backend(r), "etag": r["ETag"]}


def get(key):
    try:
        r = client().get_object(Bucket=B, Key=key)
        return {"status": 200, "backend": backend(r), "body": r["Body"].read().decode(errors="replace")}
    except ClientError as e:
        return {"status": e.response["ResponseMetadata"]["HTTPStatusCode"], "code": e.response["Error"]["Code"],
                "backend": e.response["ResponseMetadata"]["HTTPHeaders"].get("x-cutover-backend")}


def delete(key):
    r = client().delete_object(Bucket=B, Key=key)
    return {"backend": backend(r), "status": r["ResponseMetadata"]["HTTPStatusCode"]}


def writer(count, stop_file, out):
    """PUTs unique keys until at least COUNT were tried and STOP_FILE exists.
    Writes to OUT the keys acknowledged with the SHA-256 of their body, and
    how many PUTs failed and when (seconds since the start)."""
    import time
    c = client()
    acked, failures, i, t0 = {}, [], 0, time.monotonic()
    while i < int(count) or not os.path.exists(stop_file):
        key = "w/%06d" % i
        body = os.urandom(256 + (i * 37) % 3840)
        try:
            c.put_object(Bucket=B, Key=key, Body=body)
            acked[key] = hashlib.sha256(body).hexdigest()
        except Exception as e:  # noqa: BLE001 - every failure is counted, none is fatal
            failures.append([round(time.monotonic() - t0, 3), type(e).__name__])
            time.sleep(0.05)
        i += 1
    with open(out, "w") as f:
        json.dump({"tried": i, "acked": acked, "failures": failures}, f)
    return {"tried": i, "acked": len(acked), "failed": len(failures)}


def sql(db, query):
    import sqlite3
    con = sqlite3.connect(db, timeout=10)
    rows = con.execute(query).fetchall()
    con.commit()
    con.close()
    return {"rows": rows}


if __name__ == "__main__":
    fn = {"matrix": matrix, "auth": auth, "put": put, "get": get, "delete": delete, "sql": sql,
          "writer": writer, "tls": tls, "untrusted": untrusted}[sys.argv[1]]
    print(json.dumps(fn(*sys.argv[2:])))
