"""Lambda's Python runtime as the webhook function's tests stand it in.

How the runtime starts a handler (``RUNNER``), a function URL's request event, and the packages the
runtime has installed beside the function's own: what ``test_webhook_lambda.py`` runs the function's
zip with.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import boto3
import botocore
import jmespath
import s3transfer

# How Lambda's Python runtime starts a handler, reduced to what matters here: one process, the
# handler module imported once, each event answered in turn (stdin and stdout, one JSON per line).
RUNNER = """
import json, sys
sys.path[:0] = sys.argv[1:]
from skynet_tasks.webhook.lambda_handler import handler
for line in sys.stdin:
    print(json.dumps(handler(json.loads(line), None)), flush=True)
"""


def url_event(body: bytes, headers: dict[str, str], base64_body: bool = False) -> dict[str, Any]:
    """A function URL's request event (payload format 2.0): lower-case headers, the raw body."""
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": "/", "rawQueryString": "",
        "headers": {"content-type": "application/json", "user-agent": "GitHub-Hookshot/abc123",
                    "x-forwarded-proto": "https", **{k.lower(): v for k, v in headers.items()}},
        "requestContext": {"accountId": "anonymous", "apiId": "abc", "domainName": "abc.lambda-url.us-east-1.on.aws",
                           "domainPrefix": "abc", "http": {"method": "POST", "path": "/", "protocol": "HTTP/1.1",
                                                           "sourceIp": "192.30.252.1",
                                                           "userAgent": "GitHub-Hookshot/abc123"},
                           "requestId": "r-1", "routeKey": "$default", "stage": "$default", "time": "01/Dec/2026",
                           "timeEpoch": 0},
        "body": base64.b64encode(body).decode() if base64_body else body.decode(), "isBase64Encoded": base64_body,
    }


def runtime_packages(directory: Path) -> Path:
    """What Lambda's Python runtime has installed: boto3 and its own dependencies, nothing else."""
    directory.mkdir()
    for module in (boto3, botocore, s3transfer, jmespath):
        source = Path(module.__file__).parent if module.__file__.endswith("__init__.py") else Path(module.__file__)
        (directory / source.name).symlink_to(source)
    return directory
