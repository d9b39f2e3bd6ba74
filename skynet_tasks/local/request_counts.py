"""The local AWS counting the requests it serves, by service and operation (``moto_main --count-requests``).

The benchmarks measure what a cluster asks of AWS. They counted at an HTTP proxy in front of moto
(``benchmarks/countingproxy.py``): one more hop, and one more Python HTTP server sharing the machine's
cores, on every AWS call the instances made, which AWS does not have. Counted here, in moto's process,
a request costs a dictionary update and goes through no other hop. ``GET /skynet-requests/`` answers the
counts so far as JSON (``RequestCounts.read``).

Trusted: only this machine's processes reach the local AWS; a request's headers and body are only read
to name its service and operation, never acted on.
"""

from __future__ import annotations

import collections
import io
import json
import threading
from collections.abc import Iterable
from contextlib import ExitStack
from typing import Any
from urllib.parse import parse_qs

from skynet_tasks.httpcheck import http_get
from skynet_tasks.local.fault_counter import COUNTERS_PATH as FAULT_COUNTS_PATH

COUNTS_PATH = "/skynet-requests/"
# moto's own API (its readiness probe) and the fault modes' counts: not requests of AWS's. (Not "/skynet-":
# that is where Skynet's buckets are, path-style.)
NOT_AWS = ("/moto-api/", FAULT_COUNTS_PATH)


def classify(target: str, body: bytes, method: str, path: str) -> tuple[str, str]:
    """The (service, operation) of a request: its ``X-Amz-Target`` (DynamoDB, SQS's JSON protocol), the
    ``Action`` of a query-protocol body (SQS's, kombu's), else S3's method on an object or a bucket."""
    if target:
        service, _, operation = target.partition(".")
        return ("sqs" if service.startswith("AmazonSQS") else "dynamodb" if "DynamoDB" in service
                else service.lower()), operation
    action = parse_qs(body.decode("latin-1")).get("Action", [""])[0]
    if action:
        return "sqs", action
    return "s3", f"{method} {'object' if path.split('?')[0].count('/') > 1 else 'bucket'}"


class RequestCounts:
    """The requests served so far, by (service, operation), and the bytes of S3 objects read, by path."""

    def __init__(self) -> None:
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self.s3_get_bytes: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def count(self, environ: dict[str, Any]) -> tuple[str, str]:
        """Count the request of WSGI ``environ`` (its body read, and put back for moto); its (service, operation)."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        named = classify(environ.get("HTTP_X_AMZ_TARGET", ""), body, environ.get("REQUEST_METHOD", ""),
                         environ.get("PATH_INFO", ""))
        with self._lock:
            self.requests[named] += 1
        return named

    def add_s3_bytes(self, path: str, size: int) -> None:
        """Count ``size`` bytes of the S3 object at ``path`` read."""
        with self._lock:
            self.s3_get_bytes[path] += size

    def snapshot(self) -> dict[str, Any]:
        """The counts as JSON answers them: ``requests`` (``"service operation"``: n) and ``s3_get_bytes``."""
        with self._lock:
            return {"requests": {f"{s} {o}": n for (s, o), n in self.requests.items()},
                    "s3_get_bytes": dict(self.s3_get_bytes)}

    @staticmethod
    def read(host: str, port: int, timeout: float = 5.0) -> tuple[collections.Counter[tuple[str, str]],
                                                                   collections.Counter[str]]:
        """The counts of the moto server at ``host:port``: requests by (service, operation), S3 bytes by path."""
        status, body = http_get(host, port, COUNTS_PATH, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"{host}:{port}{COUNTS_PATH} answered {status}: is it running with --count-requests?")
        data = json.loads(body)
        requests = collections.Counter({tuple(k.split(" ", 1)): int(v) for k, v in data["requests"].items()})
        return requests, collections.Counter({str(k): int(v) for k, v in data["s3_get_bytes"].items()})


def install(stack: ExitStack) -> RequestCounts:
    """Count every request this process's moto server serves, until ``stack`` closes."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from skynet_tasks.compat.patching import replace

    counts = RequestCounts()

    def dispatch(self: Any, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == COUNTS_PATH:
            body = json.dumps(counts.snapshot()).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if environ.get("PATH_INFO", "").startswith(NOT_AWS):
            return moto_dispatch(self, environ, start_response)
        service, operation = counts.count(environ)
        if (service, operation) != ("s3", "GET object"):
            return moto_dispatch(self, environ, start_response)
        answered: list[str] = []

        def start(status: str, headers: list[tuple[str, str]], *rest: Any) -> Any:
            answered.append(status)
            return start_response(status, headers, *rest)

        chunks = list(moto_dispatch(self, environ, start))
        if answered and answered[0].startswith(("200", "206")):
            counts.add_s3_bytes(environ.get("PATH_INFO", ""), sum(len(chunk) for chunk in chunks))
        return chunks

    moto_dispatch = replace(stack, DomainDispatcherApplication, "__call__", dispatch)
    return counts
