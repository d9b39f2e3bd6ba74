"""Scale-in: the worker notices its termination in instance metadata, leaves, then completes the hook.

IMDSv2 is a small fake on loopback (tokens, the target lifecycle state, the group tag). moto's
server does not implement CompleteLifecycleAction (it answers 500), so that one call is recorded.
"""

from __future__ import annotations

import http.server
import threading

import pytest

from skynet_tasks.local.motoserver import free_port
from workers.lifecycle import Imds, complete_lifecycle, watch_termination

pytestmark = pytest.mark.timeout(60)


class FakeImds:
    def __init__(self) -> None:
        self.values = {"/latest/meta-data/autoscaling/target-lifecycle-state": "InService"}
        self.port = free_port()
        values = self.values

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802
                self.answer(200, b"token")

            def do_GET(self) -> None:  # noqa: N802
                if self.headers.get("X-aws-ec2-metadata-token") != "token":
                    self.answer(401, b"")
                elif self.path in values:
                    self.answer(200, values[self.path].encode())
                else:
                    self.answer(404, b"")

            def answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_the_watcher_leaves_once_the_group_terminates_the_instance_and_then_completes_the_hook():
    fake = FakeImds()
    imds = Imds("127.0.0.1", fake.port)
    left = threading.Event()
    outcome: list[bool] = []
    watcher = threading.Thread(target=lambda: outcome.append(
        watch_termination(imds, "i-0abc", left.set, threading.Event(), interval=0.05)))
    watcher.start()

    assert not left.wait(0.5)  # in service: nothing happens
    fake.values["/latest/meta-data/autoscaling/target-lifecycle-state"] = "Terminated"
    watcher.join(5)

    assert left.is_set() and outcome == [True]

    autoscaling = RecordingAutoscaling()
    assert not complete_lifecycle(imds, autoscaling, "skynet-prod-api-terminating", "i-0abc")  # no group tag
    fake.values["/latest/meta-data/tags/instance/aws:autoscaling:groupName"] = "skynet-prod-api"
    assert complete_lifecycle(imds, autoscaling, "skynet-prod-api-terminating", "i-0abc")
    assert autoscaling.calls == [{"LifecycleHookName": "skynet-prod-api-terminating",
                                  "AutoScalingGroupName": "skynet-prod-api", "LifecycleActionResult": "CONTINUE",
                                  "InstanceId": "i-0abc"}]


class RecordingAutoscaling:
    """moto's server answers CompleteLifecycleAction with a 500 (not implemented): the call is recorded instead."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    def complete_lifecycle_action(self, **kwargs: str) -> None:
        self.calls.append(kwargs)


def test_the_watcher_stops_quietly_when_the_worker_stops_first():
    fake = FakeImds()
    stop = threading.Event()
    stop.set()

    assert watch_termination(Imds("127.0.0.1", fake.port), "i-0abc", lambda: None, stop, interval=0.01) is False
