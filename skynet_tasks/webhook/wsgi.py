"""The receiver as a WSGI application (served by gunicorn; nginx may sit in front)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from skynet_tasks.webhook.receiver import Receiver, Response, refuse

log = logging.getLogger(__name__)

PATH = "/hooks/github"

StartResponse = Callable[..., Any]


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {k[5:].replace("_", "-").lower(): str(v) for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    return headers


def _content_length(environ: dict[str, Any]) -> int | None:
    try:
        return int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def make_app(receiver: Receiver) -> Callable[[dict[str, Any], StartResponse], Iterable[bytes]]:
    """The WSGI application serving ``receiver``: every answer JSON, an unexpected error a 500."""
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            response = dispatch(receiver, environ)
        except Exception:  # noqa: BLE001 - answer in JSON whatever broke; the traceback goes to the log
            log.exception("webhook request failed")
            response = refuse(500, "internal error; see the receiver's log")
        body = response.json()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        if response.status == 413:
            headers.append(("Connection", "close"))  # the unread rest of the body is never drained
        start_response(f"{response.status} {STATUS_TEXT.get(response.status, 'Status')}", headers)
        return [body]
    return app


def dispatch(receiver: Receiver, environ: dict[str, Any]) -> Response:
    """The response to one request: ``GET /health``, or a POST to ``PATH`` handed to the receiver.

    The body is read up to one byte past the limit; any other path is a 404, any other method a 405.
    """
    path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
    if path == "/health" and method == "GET":
        return Response(200, {"ok": True})
    if path != PATH:
        return refuse(404, f"nothing here; GitHub hooks go to POST {PATH}")
    if method != "POST":
        return refuse(405, "only POST")
    headers = _headers(environ)
    early = receiver.precheck(headers, _content_length(environ))
    if early is not None:
        return early
    # Read at most one byte past the limit: a chunked or lying body is cut off, never read whole.
    body = environ["wsgi.input"].read(receiver.max_body + 1)
    return receiver.handle(headers, body)


STATUS_TEXT = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
               405: "Method Not Allowed", 413: "Payload Too Large", 415: "Unsupported Media Type",
               500: "Internal Server Error", 503: "Service Unavailable"}
