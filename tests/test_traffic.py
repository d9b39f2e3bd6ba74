"""The app's user that the demo and the cluster tests watch rollouts through."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest

from skynet_tasks.local.motoserver import free_port
from skynet_tasks.local.traffic import request, traffic_to

pytestmark = pytest.mark.timeout(30)


class App(http.server.BaseHTTPRequestHandler):
    """``/`` answers the sample app's JSON, ``/broken`` a 502, ``/text`` a 200 that is not JSON."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        status, body = {"/": (200, json.dumps({"release": "r1"}).encode()), "/broken": (502, b"bad gateway"),
                        "/text": (200, b"hello")}[self.path]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


@pytest.fixture
def app() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), App)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(5)


def test_a_request_gives_the_status_and_the_json_answer_or_why_there_is_none(app):
    assert request(f"{app}/") == (200, {"release": "r1"})
    assert request(f"{app}/broken") == (502, None)
    assert request(f"{app}/text") == ("JSONDecodeError", None)
    assert request(f"http://127.0.0.1:{free_port()}/") == ("ConnectionRefusedError", None)


def test_traffic_kept_up_during_a_block_records_every_outcome_and_counts_the_failures_by_reason(app):
    with traffic_to(f"{app}/", pause=0.01) as good:
        time.sleep(0.3)
    with traffic_to(f"{app}/broken", pause=0.01) as bad:
        time.sleep(0.3)
    total = len(good.outcomes)
    time.sleep(0.1)

    assert total > 3 and good.failures() == [] and good.answers == [{"release": "r1"}] * total
    assert len(good.outcomes) == total  # it stopped with the block
    assert bad.answers == [] and bad.reasons() == {"HTTP 502": len(bad.outcomes)}
