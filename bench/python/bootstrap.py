#!/usr/bin/env python3
"""The products GET handler written the way most teams write a Lambda: Python, boto3 imported
and the table resource created at module load, the handler reading one item.

It speaks the Lambda Runtime API itself (as the `provided` runtimes do) so that devstack starts
and measures it exactly like the Rust binary. The loop mirrors what awslambdaric does.
"""
import json
import os
import urllib.request

import boto3  # the import most handlers start with; part of the cold start measured

TABLE = boto3.resource("dynamodb").Table(os.environ["PRODUCTS_TABLE"])


def handler(event, _context):
    product_id = (event.get("pathParameters") or {}).get("id")
    item = TABLE.get_item(Key={"id": product_id}, ConsistentRead=True).get("Item")
    if item is None:
        return {"statusCode": 404, "body": json.dumps({"code": "NOT_FOUND", "message": "not found", "details": {}})}
    return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps(item, default=str)}


API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation"
while True:
    with urllib.request.urlopen(API + "/next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    result = handler(event, None)
    req = urllib.request.Request(f"{API}/{request_id}/response", data=json.dumps(result).encode(), method="POST")
    urllib.request.urlopen(req).read()
