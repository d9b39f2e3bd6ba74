"""An HTTP proxy in front of moto's server that counts AWS requests by service and operation.

Instances pointed at it (``AWS_ENDPOINT_URL``) talk to moto exactly as before; the
proxy only forwards and counts, which is how the benchmarks measure what an idle
or a busy cluster asks of AWS.
"""

from __future__ import annotations

import collections
import http.client
import http.server
import threading
from urllib.parse import urlsplit

from skynet_tasks.local.motoserver import free_port
from skynet_tasks.local.request_counts import classify

DYNAMO_ERROR = b'{"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "injected"}'
S3_ERROR = b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


class CountingProxy:
    def __init__(self) -> None:
        self.upstream: str | None = None
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        # Bytes of response bodies per S3 object path fetched with GET (the build-once figures).
        self.s3_get_bytes: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.port = free_port()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body leave in two writes: with Nagle's algorithm on, the body waits for
            # the client's delayed ACK of the headers, and every AWS request took 40 ms more.
            disable_nagle_algorithm = True
            moto_connection: http.client.HTTPConnection | None = None  # this client connection's, once opened

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                service, operation = classify(self.headers.get("X-Amz-Target", ""), body, self.command, self.path)
                with proxy.lock:
                    proxy.counts[(service, operation)] += 1
                    fail = proxy.should_fail(service)
                if fail:
                    error = DYNAMO_ERROR if service == "dynamodb" else S3_ERROR
                    self.send_response(500)
                    self.send_header("Content-Length", str(len(error)))
                    self.end_headers()
                    self.wfile.write(error)
                    return
                upstream = self.upstream_connection()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException):
                    # moto stopping under a long poll (the cluster going down): the client sees a
                    # dropped connection, as it would from moto itself, and nothing is printed.
                    upstream.close()
                    self.close_connection = True
                    return
                if service == "s3" and self.command == "GET" and response.status in (200, 206):
                    with proxy.lock:
                        proxy.s3_get_bytes[self.path.split("?")[0]] += len(data)
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def upstream_connection(self) -> http.client.HTTPConnection:
                # One connection to moto per client connection, kept open as the client keeps its own (AWS
                # clients keep theirs): a new one per request made moto start a thread per request, and
                # the proxy's connects and moto's threads took CPU the cluster measured competes for.
                if self.moto_connection is None:
                    target = urlsplit(proxy.upstream or "")
                    self.moto_connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                                                      timeout=60)
                return self.moto_connection

            def finish(self) -> None:
                super().finish()
                if self.moto_connection is not None:
                    self.moto_connection.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any

            def handle(self) -> None:
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # a client that went away (a killed worker, a cluster going down) answers nothing

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def should_fail(self, service: str) -> bool:
        """Whether to answer this request with a 500 instead of forwarding it (never, here)."""
        return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self) -> collections.Counter[tuple[str, str]]:
        with self.lock:
            return collections.Counter(self.counts)

    def stop(self) -> None:
        self.server.shutdown()
