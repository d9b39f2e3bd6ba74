"""Plain HTTP GETs to fixed loopback or link-local addresses (app health checks, instance metadata).

http.client takes a host and port, never a URL, so no scheme from anywhere can
turn a health check into a file read.
"""

from __future__ import annotations

import http.client


def http_get(host: str, port: int, path: str, timeout: float, method: str = "GET",
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and body of one request; raises OSError (or http.client.HTTPException) when unreachable."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def healthy(host: str, port: int, path: str, timeout: float = 2.0) -> bool:
    """Whether ``http://host:port/path`` answers 2xx within ``timeout`` seconds."""
    try:
        status, _ = http_get(host, port, path, timeout)
    except (OSError, http.client.HTTPException):
        return False
    return 200 <= status < 300
