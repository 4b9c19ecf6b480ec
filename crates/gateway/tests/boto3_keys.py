"""boto3 against the gateway as an application (or an attacker) uses it:
dot-segment keys, the probe prefix (read, list with pagination, delete in a
batch). The gateway fronts one Garage bucket that holds `a`, `b`, `c` and
probe objects under `.cutover-probe/`.

Environment: GW_ENDPOINT, GW_KEY, GW_SECRET. Prints one JSON object.
"""

import json
import os

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

client = boto3.client(
    "s3",
    endpoint_url=os.environ["GW_ENDPOINT"],
    aws_access_key_id=os.environ["GW_KEY"],
    aws_secret_access_key=os.environ["GW_SECRET"],
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
sent = []
client.meta.events.register("before-send", lambda request, **_: sent.append(request.url))


def code(f):
    try:
        f()
        return "ok"
    except ClientError as e:
        return e.response["Error"]["Code"] or str(e.response["ResponseMetadata"]["HTTPStatusCode"])


out = {"dot_keys": {}, "sent": sent}
for key in ["a/../b", "./x", "..", "x/."]:
    out["dot_keys"][key] = code(lambda: client.put_object(Bucket="app", Key=key, Body=b"x"))
out["probe_get"] = code(lambda: client.get_object(Bucket="app", Key=".cutover-probe/p0"))
out["probe_head"] = code(lambda: client.head_object(Bucket="app", Key=".cutover-probe/p0"))
out["probe_put"] = code(lambda: client.put_object(Bucket="app", Key=".cutover-probe/p0", Body=b"forged"))
listed = []
for page in client.get_paginator("list_objects_v2").paginate(Bucket="app", PaginationConfig={"PageSize": 2}):
    listed += [o["Key"] for o in page.get("Contents", [])]
    listed += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
out["listed_v2"] = listed
listed = []
for page in client.get_paginator("list_objects").paginate(Bucket="app", Delimiter="/"):
    listed += [o["Key"] for o in page.get("Contents", [])]
    listed += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
out["listed_v1_delimited"] = listed
r = client.delete_objects(
    Bucket="app", Delete={"Objects": [{"Key": "c"}, {"Key": ".cutover-probe/p1"}]}
)
out["deleted"] = [d["Key"] for d in r.get("Deleted", [])]
out["errors"] = [(e["Key"], e["Code"]) for e in r.get("Errors", [])]
print(json.dumps(out))
