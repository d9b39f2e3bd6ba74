"""The bake on the instance (``skynet_tasks.bake``): the updated app keeps passing its health check for
``min_healthy_time``, checked about every second, and the first failed check ends the bake.

The app is the sample app itself, run under the instance's own supervisor (``ProcessServices``) and
checked over HTTP, with its ``unhealthy-after.txt`` control making it turn unhealthy after N seconds.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from skynet_tasks import buildspec
from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.bake import TurnedUnhealthy, bake
from skynet_tasks.installer import InstanceLayout, UpdateContext, switch_current
from skynet_tasks.local.sample_repo import SAMPLE_APP
from skynet_tasks.services import ProcessServices

pytestmark = pytest.mark.timeout(90)

SHA = "b" * 40
HTTP_ONLY = "service:\n  command: [python3, app.py]\nhealth:\n  http: /health\n  timeout: 15\nupdate_timeout: 60\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def release(root: Path, files: dict[str, str]) -> Path:
    """The sample app as release SHA under ``root``, ``current`` pointing at it, with ``files`` written in it."""
    target = root / "releases" / SHA
    shutil.copytree(SAMPLE_APP, target, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in files.items():
        (target / name).write_text(text)
    switch_current(InstanceLayout(root), SHA)
    return target


@pytest.fixture
def app(tmp_path: Path):
    """Start the sample app of a release (files given) on a free port as ticket 2's update does; yield its context."""
    started: list[ProcessServices] = []

    def start(files: dict[str, str]) -> UpdateContext:
        release(tmp_path, {"skynet.yml": HTTP_ONLY, **files})
        services = ProcessServices(tmp_path / "run", tmp_path / "logs" / "app.log")
        started.append(services)
        port = free_port()
        env = {"PORT": str(port), "SKYNET_TICKET": "2", "SKYNET_ADDRESS": "127.0.0.1", "SKYNET_RELEASE": SHA}
        services.restart(["python3", "app.py"], tmp_path / "current", env)
        return UpdateContext(layout=InstanceLayout(tmp_path), store=ArtifactStore(None, "unused"),
                             services=services, env={"SKYNET_TICKET": "2"}, app_port=port)

    yield start
    for services in started:
        services.stop(grace=2)


def wait_until_up(ctx: UpdateContext) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", ctx.app_port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the sample app did not listen")


def test_an_app_that_stays_healthy_bakes_for_the_whole_time_checked_every_second(app):
    ctx = app({})
    wait_until_up(ctx)
    began = time.monotonic()
    log_text = bake(ctx, 3.0)
    took = time.monotonic() - began
    assert 3.0 <= took < 20
    assert "baking 3s: checking its health check every 1s" in log_text
    checks = int(log_text.rsplit("(", 1)[1].split(" checks")[0])
    assert 4 <= checks <= 5  # at 0, 1, 2 and 3 s (one more if a check straddled a second)


def test_an_app_turning_unhealthy_2s_after_its_update_fails_the_bake_saying_when(app):
    ctx = app({"unhealthy-after.txt": "ticket:2 2\n"})
    wait_until_up(ctx)
    began = time.monotonic()
    with pytest.raises(TurnedUnhealthy) as failed:
        bake(ctx, 30.0)
    took = time.monotonic() - began
    assert 1.5 <= took < 15  # caught at the first check after 2 s, not at the end of the 30 s bake
    reason = failed.value.reason
    assert reason.startswith("turned unhealthy ") and "s after its update (during its bake of 30s)" in reason
    assert "GET /health: HTTP 503" in reason
    assert "turned unhealthy" in failed.value.log_text


def test_the_control_names_a_ticket_so_other_tickets_stay_healthy(app):
    ctx = app({"unhealthy-after.txt": "ticket:3 0\n"})
    wait_until_up(ctx)
    assert "stayed healthy" in bake(ctx, 1.0)


def test_an_app_that_stops_during_the_bake_fails_it(app):
    ctx = app({})
    wait_until_up(ctx)
    stopper = threading.Timer(1.0, lambda: ctx.services.stop(grace=2))  # type: ignore[attr-defined]
    stopper.start()
    try:
        with pytest.raises(TurnedUnhealthy, match="turned unhealthy"):
            bake(ctx, 30.0)
    finally:
        stopper.join()


class FlakyServices:
    """An app that runs for its first ``runs`` checks, then stops (only ``running`` is asked)."""

    def __init__(self, runs: int) -> None:
        self.runs = runs
        self.asked = 0

    def running(self) -> bool:
        self.asked += 1
        return self.asked <= self.runs


def test_the_bake_loop_checks_each_interval_on_its_clock(tmp_path: Path):
    release(tmp_path, {"skynet.yml": "service:\n  command: [python3, app.py]\n"})  # no health check: it must run
    assert buildspec.load_buildspec(tmp_path / "current" / "skynet.yml").health is None
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    ctx = UpdateContext(layout=InstanceLayout(tmp_path), store=ArtifactStore(None, "unused"),
                        services=FlakyServices(runs=100), env={}, app_port=1)  # type: ignore[arg-type]
    log_text = bake(ctx, 2.5, clock=lambda: now[0], sleep=sleep)
    assert slept == [1.0, 1.0, 0.5] and "stayed healthy 2.5s (4 checks)" in log_text
    assert "checking that the app runs (no health check)" in log_text

    now[0], slept[:] = 0.0, []
    ctx.services = FlakyServices(runs=3)  # type: ignore[assignment]
    with pytest.raises(TurnedUnhealthy) as failed:
        bake(ctx, 10.0, clock=lambda: now[0], sleep=sleep)
    assert failed.value.reason == ("turned unhealthy 3s after its update (during its bake of 10s): "
                                   "the app is not running")


def test_rollout_status_shows_a_ticket_baking_and_watch_prints_the_change():
    import io

    from skynet_tasks.cli.progress import progress
    from skynet_tasks.cli.watch import Printer

    summary = {"id": "r1", "group": "g", "release": "a" * 40, "kind": "code", "state": "running",
               "created_at": 100.0, "expected": ["i-1"], "tickets": [
                   {"number": 1, "instance": "i-1", "state": "updating", "started_at": 100.0,
                    "acknowledged_at": 100.5}]}
    baking = {**summary, "tickets": [{**summary["tickets"][0], "bake_started_at": 104.0, "bake_seconds": 5}]}
    assert progress(summary, None, 104.0).phase == "ticket 1/1 i-1 updating 3.5 s"
    shown = progress(baking, None, 106.0)
    assert shown.phase == "ticket 1/1 i-1 updating 5.5 s: baking, healthy 2.0 s of 5 s"
    assert shown.to_json()["tickets"][0]["bake"] == {"healthy": 2.0, "of": 5.0}
    # An earlier attempt's bake (before this attempt was acknowledged) is not this one's.
    retried = {**baking, "tickets": [{**baking["tickets"][0], "acknowledged_at": 105.0}]}
    assert "baking" not in progress(retried, None, 106.0).phase

    lines = io.StringIO()
    printer = Printer(stream=lines, tty=False)
    for view, now in ((summary, 104.0), (baking, 105.0), (baking, 106.0)):
        printer.show(progress(view, None, now))
    phases = [line.rsplit(": ", 1)[-1] for line in lines.getvalue().splitlines() if line.startswith("rollout")]
    assert phases == ["ticket 1/1 i-1 updating 3.5 s", "baking, healthy 1.0 s of 5 s"]  # once per change
