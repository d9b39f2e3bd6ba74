"""The ``throttle`` fault mode: a fraction of DynamoDB, SQS and S3 requests refused as AWS throttles them.

Each service answers in its own protocol, with the code botocore's retry modes know as
throttling (botocore/retries/standard.py ``_THROTTLED_ERROR_CODES``; S3's 503 is also a
transient status):

- DynamoDB (JSON 1.0): 400 ``ProvisionedThroughputExceededException`` for item operations,
  ``ThrottlingException`` for table (control plane) operations.
- SQS: 400 ``RequestThrottled``, in JSON (``X-Amz-Target`` requests, with the query-compatible
  error header) or in the query protocol's XML.
- S3: 503 ``SlowDown``.

The request is refused before moto sees it, so a throttled write changed nothing, as on AWS.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import uuid
from typing import Any

from skynet_tasks.local.fault_counter import THROTTLED_SERVICES, FaultCounter

log = logging.getLogger(__name__)

# DynamoDB's data-plane actions, throttled as a table's capacity is; any other action is the control plane's.
_ITEM_ACTIONS = frozenset({
    "GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "BatchWriteItem",
    "TransactGetItems", "TransactWriteItems", "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction",
})


class Throttle:
    """Refuses a random ``rate`` of the requests to ``services`` (of DynamoDB, SQS, S3) with their throttling error."""

    def __init__(self, rate: float, counter: FaultCounter, services: tuple[str, ...] = THROTTLED_SERVICES,
                 seed: int | None = None) -> None:
        self.rate = rate
        self.counter = counter
        self.services = services
        # Fault injection, not security: a plain PRNG, seedable to replay a run.
        self._random = random.Random(seed)  # noqa: S311  # nosec B311
        self._lock = threading.Lock()

    def maybe_refuse(self, service: str | None, environ: dict[str, Any], start_response: Any) -> list[bytes] | None:
        """The throttling answer for this request (already started), or None to serve it."""
        if service not in self.services:
            return None
        with self._lock:
            refused = self._random.random() < self.rate
        if not refused:
            return None
        _drain_body(environ)
        status, headers, body, code = _answer(str(service), environ)
        self.counter.add(f"throttled:{service}")
        log.info("faults: %s %s throttled (%s)", service, _target(environ) or environ.get("PATH_INFO", ""), code)
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]


def _drain_body(environ: dict[str, Any]) -> None:
    # The client may reuse the connection: the unread body would be parsed as its next request.
    stream = environ.get("wsgi.input")
    if stream is None:
        return
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit():
        stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):
        stream.read()


def _target(environ: dict[str, Any]) -> str:
    """The action of a JSON-protocol request (``X-Amz-Target: Service.Action``), or ''."""
    return str(environ.get("HTTP_X_AMZ_TARGET", "")).rpartition(".")[2]


def _answer(service: str, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes, str]:
    request_id = str(uuid.uuid4())
    if service == "dynamodb":
        if _target(environ) in _ITEM_ACTIONS:
            code = "ProvisionedThroughputExceededException"
            message = ("The level of configured provisioned throughput for the table was exceeded. "
                       "Consider increasing your provisioning level with the UpdateTable API.")
        else:
            code, message = "ThrottlingException", "Rate of requests exceeds the allowed throughput."
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}).encode()
        return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                   ("x-amzn-RequestId", request_id)], body, code
    if service == "sqs":
        code, message = "RequestThrottled", "The request was denied due to request throttling."
        if _target(environ):
            body = json.dumps({"__type": f"com.amazonaws.sqs#{code}", "message": message}).encode()
            return "400 Bad Request", [("Content-Type", "application/x-amz-json-1.0"),
                                       ("x-amzn-query-error", f"{code};Sender"),
                                       ("x-amzn-RequestId", request_id)], body, code
        xml = (f"<?xml version=\"1.0\"?><ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>"
               f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>")
        return "400 Bad Request", [("Content-Type", "text/xml")], xml.encode(), code
    code = "SlowDown"
    xml = (f"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>"
           f"<Message>Please reduce your request rate.</Message><RequestId>{request_id}</RequestId></Error>")
    return "503 Slow Down", [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], xml.encode(), code
