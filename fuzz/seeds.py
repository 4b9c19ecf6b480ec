"""Writes the seed corpora of the fuzz targets (see docs/fuzzing.md).

    python3 fuzz/seeds.py fuzz/corpus-raw

Every request is signed with the key of the S3 documentation's examples
(AKIAIOSFODNN7EXAMPLE) at 2013-05-24T00:00:00Z, the key and time the
targets verify with: real Authorization headers and presigned URLs as
botocore writes them, aws-chunked bodies as botocore frames them
(unsigned, with trailing checksums) and as the S3 documentation signs
them (chunk signatures chained from the seed signature). The configuration
and runbook seeds are the repository's examples, runbooks and the TOML
blocks of docs/*.md.
"""

import base64
import datetime
import hashlib
import hmac
import io
import os
import re
import struct
import sys
import zlib

import boto3
import botocore.auth
import botocore.httpchecksum
from botocore.awsrequest import AWSResponse
from botocore.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
WHEN = datetime.datetime(2013, 5, 24, 0, 0, 0, tzinfo=datetime.timezone.utc)
DATETIME = "20130524T000000Z"
# The seed signature of the S3 documentation's chunked upload example (the
# aws_chunked target continues the chain from it).
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
EMPTY = hashlib.sha256(b"").hexdigest()


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- aws-chunked -----------------------------------------------------------


def signing_key():
    k = ("AWS4" + SECRET).encode()
    for part in ("20130524", "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def chunk_sig(prev, data):
    sts = "\n".join(
        [
            "AWS4-HMAC-SHA256-PAYLOAD",
            DATETIME,
            "20130524/us-east-1/s3/aws4_request",
            prev,
            EMPTY,
            hashlib.sha256(data).hexdigest(),
        ]
    )
    return hmac.new(signing_key(), sts.encode(), hashlib.sha256).hexdigest()


def trailer_sig(prev, trailer):
    sts = "\n".join(
        [
            "AWS4-HMAC-SHA256-TRAILER",
            DATETIME,
            "20130524/us-east-1/s3/aws4_request",
            prev,
            hashlib.sha256(trailer.encode()).hexdigest(),
        ]
    )
    return hmac.new(signing_key(), sts.encode(), hashlib.sha256).hexdigest()


CHECKSUMS = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"]


def reflected_crc(poly, bits, data):
    mask = (1 << bits) - 1
    crc = mask
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
    return crc ^ mask


def digest(name, data):
    if name == "crc32":
        return struct.pack(">I", zlib.crc32(data))
    if name == "crc32c":
        return struct.pack(">I", reflected_crc(0x82F63B78, 32, data))
    if name == "crc64nvme":
        return struct.pack(">Q", reflected_crc(0x9A6C9329AC4BC9B5, 64, data))
    return hashlib.new(name, data).digest()


def checksum_value(name, data):
    return base64.b64encode(digest(name, data)).decode()


class Checksum:
    """A checksum class for botocore's AwsChunkedWrapper (it has its own only
    for crc32, sha1 and sha256 without awscrt)."""

    def __init__(self, name):
        self.name, self.data = name, b""

    def update(self, chunk):
        self.data += chunk

    def b64digest(self):
        return checksum_value(self.name, self.data)


def signed_body(data, size, trailer=None):
    """STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER], chunks of `size`."""
    out, prev = b"", SEED
    for i in range(0, len(data), size):
        c = data[i : i + size]
        prev = chunk_sig(prev, c)
        out += b"%x;chunk-signature=%s\r\n" % (len(c), prev.encode()) + c + b"\r\n"
    prev = chunk_sig(prev, b"")
    out += b"0;chunk-signature=%s\r\n" % prev.encode()
    if trailer is None:
        return out + b"\r\n"
    canonical = "" if not trailer else trailer + "\n"
    sig = trailer_sig(prev, canonical)
    if trailer:
        out += trailer.encode() + b"\r\n"
    return out + b"x-amz-trailer-signature:%s\r\n\r\n" % sig.encode()


def unsigned_body(data, size, checksum):
    """STREAMING-UNSIGNED-PAYLOAD-TRAILER as botocore frames it."""
    cls = (lambda: Checksum(checksum)) if checksum else None
    name = "x-amz-checksum-%s" % checksum if checksum else "x-amz-checksum"
    w = botocore.httpchecksum.AwsChunkedWrapper(io.BytesIO(data), checksum_cls=cls, checksum_name=name, chunk_size=size)
    return w.read()


def chunked_input(kind, checksum, cuts, declared, body):
    """The aws_chunked target's input: form, cuts, declared (u64 LE), body."""
    idx = CHECKSUMS.index(checksum) if checksum else 7
    return bytes([kind | (idx << 2), cuts]) + struct.pack("<Q", declared) + body


def aws_chunked(out):
    datas = [b"", b"a", b"hello world", b"a" * 1024, bytes(range(256)) * 4]
    n = 0
    for data in datas:
        for size in (1, 5, 64, 1024):
            if size > max(len(data), 1) and size != 1024:
                continue
            # Signed chunks, no trailer.
            write(out, "aws_chunked", "signed-%d" % n, chunked_input(0, None, n % 7, len(data), signed_body(data, size)))
            n += 1
            # Signed chunks with a signed trailer, each checksum, and none.
            for c in CHECKSUMS + [None]:
                trailer = "x-amz-checksum-%s:%s" % (c, checksum_value(c, data)) if c else ""
                body = signed_body(data, size, trailer)
                write(out, "aws_chunked", "signed-trailer-%d" % n, chunked_input(1, c, n % 5, len(data), body))
                n += 1
            # Unsigned chunks with a trailer, as botocore writes them.
            for c in CHECKSUMS + [None]:
                body = unsigned_body(data, size, c)
                write(out, "aws_chunked", "unsigned-%d" % n, chunked_input(2, c, n % 11, len(data), body))
                n += 1
    # Hostile framing: endless size, bad hex, missing CRLF, extra bytes.
    for i, body in enumerate(
        [b"fffffffffffffffff\r\n", b"+5\r\nhello\r\n", b"5\r\nhelloXX0\r\n\r\n", b"0\r\n\r\nmore", b"0" * 5000]
    ):
        write(out, "aws_chunked", "hostile-%d" % i, chunked_input(2, None, 0, 5, body))


# --- SigV4 -----------------------------------------------------------------


def head(method, url, headers):
    from urllib.parse import urlsplit

    u = urlsplit(url)
    target = u.path + ("?" + u.query if u.query else "")
    lines = ["%s %s HTTP/1.1" % (method, target)]
    if not any(k.lower() == "host" for k in headers):
        lines.append("host: %s" % u.netloc)
    for k, v in headers.items():
        if isinstance(v, bytes):
            v = v.decode()
        lines.append("%s: %s" % (k.lower(), v))
    return "\r\n".join(lines) + "\r\n\r\n"


def sigv4(out):
    botocore.auth.get_current_datetime = lambda *a, **k: WHEN
    captured = []

    def capture(request, **kwargs):
        captured.append((request.method, request.url, dict(request.headers)))
        r = AWSResponse(request.url, 200, {}, None)
        r._content = b""
        return r

    s3 = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="http://examplebucket.s3.amazonaws.com",
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    s3.meta.events.register("before-send", capture)
    calls = [
        lambda: s3.get_object(Bucket="app", Key="test.txt", Range="bytes=0-9"),
        lambda: s3.head_object(Bucket="app", Key="dir/a b+c%.txt"),
        lambda: s3.put_object(Bucket="app", Key="k", Body=b"hello world", ContentType="text/plain"),
        lambda: s3.put_object(Bucket="app", Key="k", Body=b"x", Metadata={"owner": "ops"}, Tagging="a=b"),
        lambda: s3.list_objects_v2(Bucket="app", Prefix="logs/", Delimiter="/", MaxKeys=10),
        lambda: s3.list_objects_v2(Bucket="app", ContinuationToken="tok/+=", StartAfter="a"),
        lambda: s3.delete_object(Bucket="app", Key="k"),
        lambda: s3.delete_objects(Bucket="app", Delete={"Objects": [{"Key": "a"}, {"Key": "b&c"}]}),
        lambda: s3.copy_object(Bucket="app", Key="dst", CopySource={"Bucket": "app", "Key": "src"}),
        lambda: s3.create_multipart_upload(Bucket="app", Key="big"),
        lambda: s3.upload_part(Bucket="app", Key="big", UploadId="u1", PartNumber=1, Body=b"part"),
        lambda: s3.complete_multipart_upload(
            Bucket="app", Key="big", UploadId="u1", MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"e"'}]}
        ),
        lambda: s3.put_object_tagging(Bucket="app", Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]}),
        lambda: s3.list_buckets(),
    ]
    for call in calls:
        try:
            call()
        except Exception:
            pass
    for i, (method, url, headers) in enumerate(captured):
        write(out, "sigv4", "boto-%02d" % i, head(method, url, headers))
        # The same request with an x-amz-* header that was not signed.
        h = dict(headers)
        h["x-amz-copy-source"] = "/app/private/x"
        write(out, "sigv4", "boto-unsigned-%02d" % i, head(method, url, h))
    # The S3 documentation's GET example.
    write(
        out,
        "sigv4",
        "doc-get",
        "GET /test.txt HTTP/1.1\r\nhost: examplebucket.s3.amazonaws.com\r\nrange: bytes=0-9\r\n"
        "x-amz-content-sha256: %s\r\nx-amz-date: 20130524T000000Z\r\n"
        "authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41\r\n\r\n" % EMPTY,
    )
    # Presigned URLs.
    for i, (op, params) in enumerate(
        [
            ("get_object", {"Bucket": "app", "Key": "test.txt"}),
            ("put_object", {"Bucket": "app", "Key": "up/load.bin"}),
            ("get_object", {"Bucket": "app", "Key": "a b/ü.txt", "ResponseContentType": "text/plain"}),
            ("list_objects_v2", {"Bucket": "app", "Prefix": "x"}),
        ]
    ):
        url = s3.generate_presigned_url(op, Params=params, ExpiresIn=3600)
        method = "PUT" if op.startswith("put") else "GET"
        write(out, "sigv4", "presigned-%d" % i, head(method, url, {"host": "examplebucket.s3.amazonaws.com"}))
        write(
            out,
            "sigv4",
            "presigned-unsigned-%d" % i,
            head(method, url, {"host": "examplebucket.s3.amazonaws.com", "x-amz-acl": "public-read"}),
        )
    write(out, "sigv4", "query-escapes", "GET /b/k?a=%41%4&b=%zz&%+1=%E2%82%AC&c HTTP/1.1\r\nhost: h\r\n\r\n")
    # aws-chunked uploads announce themselves in the headers.
    for i, sha in enumerate(
        ["STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"]
    ):
        write(
            out,
            "sigv4",
            "streaming-%d" % i,
            "PUT /examplebucket/chunkObject.txt HTTP/1.1\r\nhost: s3.amazonaws.com\r\nx-amz-date: 20130524T000000Z\r\n"
            "x-amz-storage-class: REDUCED_REDUNDANCY\r\nx-amz-content-sha256: %s\r\ncontent-encoding: aws-chunked\r\n"
            "x-amz-decoded-content-length: 66560\r\nx-amz-trailer: x-amz-checksum-crc32c\r\ncontent-length: 66824\r\n"
            "authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
            "x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer,"
            "Signature=%s\r\n\r\n" % (sha, SEED),
        )


# --- S3 XML ----------------------------------------------------------------

XML = {
    "delete": '<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Object><Key>a&amp;b</Key></Object><Object><Key>c</Key><VersionId>v1</VersionId></Object>"
    "<Quiet>true</Quiet></Delete>",
    "delete-refs": "<Delete><Object><Key>line&#10;break&#xD;</Key></Object><Object><Key><![CDATA[<raw>&]]></Key>"
    "</Object><Object><Key>caf&#233;</Key></Object></Delete>",
    "complete": "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;e1&quot;</ETag></Part>"
    "<Part><PartNumber>2</PartNumber><ETag>&quot;e2&quot;</ETag><ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>"
    "</CompleteMultipartUpload>",
    "error": '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does '
    "not exist.</Message><Key>k</Key><RequestId>4442587FB7D0A2F9</RequestId></Error>",
    "error-200": '<?xml version="1.0" encoding="UTF-8"?>\n\n<Error><Code>InternalError</Code><Message>We encountered '
    "an internal error. Please try again.</Message><RequestId>656c76696e6727732072657175657374</RequestId>"
    "<HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>",
    "list": '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<Name>backend-bucket</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys>"
    "<IsTruncated>true</IsTruncated><Contents><Key>a&amp;b</Key><LastModified>2009-10-12T17:50:30.000Z"
    "</LastModified><ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents><Contents><Key>c</Key><Size>0</Size></Contents>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken></ListBucketResult>",
    "buckets": '<?xml version="1.0" encoding="UTF-8"?><ListAllMyBucketsResult><Owner><ID>o</ID></Owner><Buckets>'
    "<Bucket><Name>app</Name><CreationDate>2019-12-11T23:32:47+00:00</CreationDate></Bucket>"
    "<Bucket><Name>logs</Name></Bucket></Buckets></ListAllMyBucketsResult>",
    "initiate": '<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>backend-bucket'
    "</Bucket><Key>big</Key><UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
    "</InitiateMultipartUploadResult>",
    "completed": '<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Location>http://h/b/k'
    "</Location><Bucket>backend-bucket</Bucket><Key>big</Key><ETag>&quot;3858f62230ac3c915f300c664312c11f-9&quot;"
    "</ETag></CompleteMultipartUploadResult>",
    "copy": "<CopyObjectResult><LastModified>2009-10-28T22:32:00</LastModified><ETag>&quot;9b2cf535f27731c974343645a"
    "3985328&quot;</ETag></CopyObjectResult>",
    "keys": "a&b\0 leading and trailing \0tab\there\0<Key>\0]]>\0\u00e9\u4e2d\U0001F600\0line\nbreak",
}


def s3_xml(out):
    for name, text in XML.items():
        write(out, "s3_xml", name, text)


# --- config and runbooks ---------------------------------------------------


def toml_blocks(path):
    text = open(path, encoding="utf-8").read()
    return re.findall(r"```toml\n(.*?)```", text, re.S)


def config(out):
    for name in os.listdir(os.path.join(ROOT, "examples")):
        if name.endswith(".toml"):
            write(out, "config", "example-" + name, open(os.path.join(ROOT, "examples", name), "rb").read())
    base = open(os.path.join(ROOT, "examples", "cutover.toml"), encoding="utf-8").read()
    docs = os.path.join(ROOT, "docs")
    # Markdown files only: docs/ also holds a directory of images.
    for doc in sorted(d for d in os.listdir(docs) if d.endswith(".md")):
        for i, block in enumerate(toml_blocks(os.path.join(docs, doc))):
            if "[[steps]]" in block:
                continue
            write(out, "config", "doc-%s-%d.toml" % (doc[:-3], i), block)
            # The snippet in a whole configuration, where it validates.
            write(out, "config", "doc-%s-%d-full.toml" % (doc[:-3], i), base + "\n" + block)
    write(
        out,
        "config",
        "credentials",
        "[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = not-a-secret\n\n"
        "[other]\naws_access_key_id=x\naws_secret_access_key=y\naws_session_token=z\n",
    )


def runbook(out):
    for name in os.listdir(os.path.join(ROOT, "runbooks")):
        write(out, "runbook", name, open(os.path.join(ROOT, "runbooks", name), "rb").read())
    for doc in ("runbooks.md", "actuators.md"):
        for i, block in enumerate(toml_blocks(os.path.join(ROOT, "docs", doc))):
            if "[[steps]]" in block:
                write(out, "runbook", "doc-%s-%d.toml" % (doc[:-3], i), block)
    src = open(os.path.join(ROOT, "crates", "orchestrate", "src", "runbook.rs"), encoding="utf-8").read()
    for i, block in enumerate(re.findall(r'r#"\n(\[\[steps\]\].*?)"#', src, re.S)):
        write(out, "runbook", "built-in-%d.toml" % i, block)


# --- The fast path on the wire ------------------------------------------------


def fast_wire(out):
    """Request heads as wrk (presigned) and boto3 send them, Garage's answers,
    chunked bodies; each after its mode and limit bytes (see the target)."""
    presigned = (
        "/app/small-put?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s%%2F20130524%%2Fus-east-1%%2Fs3"
        "%%2Faws4_request&X-Amz-Date=%s&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=%s"
        % (KEY, DATETIME, "0" * 64)
    )
    auth = "AWS4-HMAC-SHA256 Credential=%s/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=%s" % (
        KEY,
        "0" * 64,
    )
    requests = [
        "PUT %s HTTP/1.1\r\nHost: 127.0.0.1:3900\r\nContent-Length: 5\r\n\r\nhello" % presigned,
        "PUT /app/dir/a%%20b HTTP/1.1\r\nhost: gw:8080\r\nuser-agent: Boto3/1.35\r\ncontent-md5: XUFAKrxLKna5cZ2REBfFkg==\r\n"
        "expect: 100-continue\r\nx-amz-date: %s\r\nx-amz-content-sha256: %s\r\nauthorization: %s\r\n"
        "content-length: 5\r\nconnection: keep-alive\r\n\r\nhello" % (DATETIME, hashlib.sha256(b"hello").hexdigest(), auth),
        "DELETE /app/k HTTP/1.1\r\nHost: gw\r\nx-amz-date: %s\r\nauthorization: %s\r\nConnection: close\r\n\r\n"
        % (DATETIME, auth),
        "HEAD /app/k?versionId=3 HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "PUT /app/k HTTP/1.1\r\nHost: gw\r\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\nContent-Length: 5\r\n\r\n",
        "GET /app/k HTTP/1.1\r\nHost: gw\r\n\r\n",
        "PUT /-/health HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n",
    ]
    for i, r in enumerate(requests):
        write(out, "fast_wire", "request-%d" % i, b"\x00\x01" + r.encode())
    date = "date: Fri, 24 May 2013 00:00:00 GMT\r\n"
    answers = [
        "HTTP/1.1 200 OK\r\nx-amz-version-id: 3\r\netag: \"5d41402abc4b2a76b9719d911017c592\"\r\ncontent-length: 0\r\n" + date + "\r\n",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nx-amz-request-id: 1\r\n\r\n",
        "HTTP/1.1 404 Not Found\r\ncontent-type: application/xml\r\ntransfer-encoding: chunked\r\n" + date
        + "\r\n25\r\n<Error><Code>NoSuchKey</Code></Error>\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\ncontent-length: 12345\r\nlast-modified: Fri, 24 May 2013 00:00:00 GMT\r\nConnection: keep-alive\r\n\r\n",
        "HTTP/1.0 503 Service Unavailable\r\nx-cutover-backend: spoofed\r\nKeep-Alive: timeout=5\r\n\r\n<Error/>",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n",
        "HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\n\r\n",
    ]
    for i, a in enumerate(answers):
        for mode in (1, 5, 9):
            write(out, "fast_wire", "answer-%d-%d" % (i, mode), bytes([mode, 1]) + a.encode())
    bodies = [
        "5\r\nhello\r\n0\r\n\r\n",
        "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32: AAAAAA==\r\n\r\n",
        "A \r\n0123456789\r\n0\r\n\r\n",
        "fffffffffffff\r\n",
        "3\r\nabcd\r\n",
        "0\r\n\r\nextra",
    ]
    for i, b in enumerate(bodies):
        write(out, "fast_wire", "chunked-%d" % i, b"\x02\x01" + b.encode())
        write(out, "fast_wire", "chunked-small-%d" % i, b"\x02\x02" + b.encode())


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "fuzz", "corpus-raw")
    aws_chunked(out)
    sigv4(out)
    s3_xml(out)
    config(out)
    runbook(out)
    fast_wire(out)
    for t in sorted(os.listdir(out)):
        print(t, len(os.listdir(os.path.join(out, t))))
