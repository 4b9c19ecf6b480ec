"""boto3 uploads with a trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER)
through the gateway over plain HTTP.

botocore only puts checksums in a trailer over HTTPS; this script makes it
believe the endpoint is HTTPS when it decides where the checksum goes (and
nowhere else), so the request really is aws-chunked with a trailer. The
CRC32C and CRC64NVME algorithms need awscrt; without it they are skipped.

Environment: GW_ENDPOINT, GW_KEY, GW_SECRET. Prints one JSON object.
"""

import json
import os

import boto3
import botocore.httpchecksum as httpchecksum
from botocore.compat import HAS_CRT
from botocore.config import Config
from botocore.exceptions import ClientError

_urlparse = httpchecksum.urlparse
httpchecksum.urlparse = lambda url: _urlparse(url)._replace(scheme="https")

client = boto3.client(
    "s3",
    endpoint_url=os.environ["GW_ENDPOINT"],
    aws_access_key_id=os.environ["GW_KEY"],
    aws_secret_access_key=os.environ["GW_SECRET"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, read_timeout=60),
)

sent = []


def record(request, **_):
    def h(name):
        v = request.headers.get(name)
        return v.decode() if isinstance(v, bytes) else v

    sent.append({"content_sha256": h("x-amz-content-sha256"), "trailer": h("x-amz-trailer")})


client.meta.events.register("before-send.s3.PutObject", record)

# Two aws-chunked chunks of 1 MiB (botocore's chunk size) and a remainder.
data = bytes((i * 7 + 3) % 256 for i in range(2 * 1024 * 1024 + 1000))
algorithms = ["CRC32", "SHA1", "SHA256"] + (["CRC32C", "CRC64NVME"] if HAS_CRT else [])
out = {"uploaded": [], "skipped": [] if HAS_CRT else ["CRC32C", "CRC64NVME"]}
for alg in algorithms:
    key = f"boto3-{alg}"
    client.put_object(Bucket="app", Key=key, Body=data, ChecksumAlgorithm=alg)
    assert sent[-1]["content_sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER", sent[-1]
    assert sent[-1]["trailer"] == f"x-amz-checksum-{alg.lower()}", sent[-1]
    back = client.get_object(Bucket="app", Key=key)["Body"].read()
    assert back == data, f"{alg}: read back {len(back)} bytes that differ"
    out["uploaded"].append(key)

# A wrong trailing checksum: refused, and nothing stored.
crc32 = httpchecksum._CHECKSUM_CLS["crc32"]  # the CRT's class when awscrt is there
real = crc32.b64digest
crc32.b64digest = lambda self: "AAAAAA=="
try:
    client.put_object(Bucket="app", Key="boto3-bad", Body=data, ChecksumAlgorithm="CRC32")
    out["bad"] = None
except ClientError as e:
    out["bad"] = [e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]]
finally:
    crc32.b64digest = real
print(json.dumps(out))
