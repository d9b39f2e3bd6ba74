"""The dashboard's charts in real headless Chromium, against seeded ledger and registry data (no cluster).

The dashboard app runs on moto's server with two groups seeded the way the conductor writes them:
local-api with an earlier completed rollout and a halted one (canary done, a ticket failed, one
cancelled), local-rp with a rollout still running. Each chart's bars are read back from the page
and checked against the ledger; screenshots of each chart go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browserkit import headless_chromium
from clusterkit import sender_for
from flask import Flask
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from skynet_tasks import names
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.conductor import Decision, Group, Rollout, Ticket
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.monitor.app import create_app
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.monitor.chart_scale import RED
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.states import RolloutKind, RolloutState, TicketState

pytestmark = pytest.mark.timeout(120)

ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "charts-test-token-0123456789"
API, RP = "local-api", "local-rp"
OLD, NEW, RP_SHA = "1" * 40, "2" * 40, "3" * 40
EARLIER, HALTED, RUNNING = "r20261201-100000-aaaaaa", "r20261201-110000-bbbbbb", "r20261201-110500-cccccc"
HOSTILE = '<img src=x onerror="window.pwned=1">'


@dataclass
class Env:
    aws: Aws
    environment: dict[str, str]
    ledger: Ledger
    registry: Registry
    app: Flask
    url: str


def seed(ledger: Ledger, registry: Registry, now: float) -> None:
    """Two groups' rollouts, as the conductor would have written them, and their instances' registry entries."""
    for number, release, heartbeat in ((1, NEW, now), (2, NEW, now), (3, OLD, now), (4, OLD, now - 600)):
        registry.register("local", "api", Endpoint(f"api-{number}", API, "127.0.0.1", 9000 + number, release,
                                                   "healthy", heartbeat))
    for number, release in ((1, RP_SHA), (2, OLD), (3, HOSTILE)):
        registry.register("local", "rp", Endpoint(f"rp-{number}", RP, "127.0.0.1", 9100 + number, release,
                                                  "healthy", now))
    done, failed = TicketState.DONE, TicketState.FAILED
    earlier = Rollout(EARLIER, API, OLD, state=RolloutState.COMPLETED, created_at=now - 900, canary="api-1",
                      published=True, finished_at=now - 840, tickets=(
                          Ticket(1, "api-1", done, now - 880, now - 880, now - 870, acknowledged_at=now - 879),
                          Ticket(2, "api-2", done, now - 875, now - 870, now - 860, acknowledged_at=now - 868),
                          Ticket(3, "api-3", done, now - 874, now - 860, now - 840, acknowledged_at=now - 859)))
    halted = Rollout(HALTED, API, NEW, state=RolloutState.HALTED, created_at=now - 120, canary="api-1",
                     published=True, reason="ticket 2 failed", tickets=(
                         Ticket(1, "api-1", done, now - 100, now - 100, now - 90, acknowledged_at=now - 99),
                         Ticket(2, "api-2", failed, now - 95, now - 90, now - 75, acknowledged_at=now - 88,
                                error="health check failed"),
                         Ticket(3, "api-3", TicketState.CANCELLED, now - 94, None, now - 75)))
    running = Rollout(RUNNING, RP, RP_SHA, state=RolloutState.RUNNING, created_at=now - 60, canary="rp-1",
                      published=True, tickets=(
                          Ticket(1, "rp-1", done, now - 50, now - 50, now - 40, acknowledged_at=now - 49),
                          Ticket(2, "rp-2", TicketState.UPDATING, now - 45, now - 40, acknowledged_at=now - 38),
                          Ticket(3, HOSTILE, TicketState.WAITING, now - 44)))
    for group, rollouts, desired in ((API, (earlier, halted), NEW), (RP, (running,), RP_SHA)):
        ledger.ensure_group(group, "/srv/sample-app.git", "main")
        for rollout in rollouts:  # oldest first: the group's index lists them in creation order
            assert ledger.create_rollout(rollout.id, group, rollout.release, RolloutKind.CODE, {"source": "test"})
        after = Group(group, line=rollouts[-1:], desired_release=desired, desired_rollout=rollouts[-1].id)
        ledger.write_decision(Group(group), Decision(after, touched=rollouts, notes=("seeded",)))


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    moto = MotoServer.start()
    try:
        environment = {**moto.environment(), "SKYNET_ENV": "local"}
        aws = aws_for(environment)
        resources = resolve(aws, "local")
        bootstrap_env(aws, resources, [API, RP])
        ledger = Ledger(aws.dynamodb, names.state_table("local"))
        registry = Registry(aws.dynamodb, names.endpoints_table("local"))
        seed(ledger, registry, time.time())
        app = create_app(resources, aws, sender_for(environment).app, Auth(TOKEN), max_age=60.0, poll_seconds=0.5,
                         allowed_hosts=("127.0.0.1", "localhost"))
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Env(aws, environment, ledger, registry, app, f"http://127.0.0.1:{server.server_port}")
        finally:
            server.shutdown()
            thread.join(5)
    finally:
        moto.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium("--window-size=1280,1000") as driver:
        yield driver


def shot(driver: WebDriver, css: str, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.find_element(By.CSS_SELECTOR, css).screenshot(str(ARTIFACTS / f"chart-{name}.png"))


def drawn(driver: WebDriver, css: str, *attributes: str, across: bool = False) -> list[list[Any]]:
    """Per element matching ``css``, as laid out top to bottom (``across``: left to right), its ``attributes``."""
    script = """
        var attributes = arguments[1];
        return Array.from(document.querySelectorAll(arguments[0])).map(function (e) {
          var box = e.getBoundingClientRect();
          return [box.top, box.left].concat(attributes.map(function (a) { return e.getAttribute(a); }));
        });"""
    rows = driver.execute_script(script, css, list(attributes)) or []
    return [row[2:] for row in sorted(rows, key=lambda row: row[1] if across else row[0])]


def open_page(driver: WebDriver, url: str, css: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 15).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))


def ledger_tickets(env: Env, rollout_id: str) -> list[list[str]]:
    view = env.ledger.rollout_view(rollout_id)
    assert view is not None
    return [[str(t["number"]), t["instance"], t["state"]] for t in sorted(view["tickets"], key=lambda t: t["number"])]


def test_the_rollout_timeline_draws_each_ticket_in_the_ledgers_order(env, browser):
    open_page(browser, f"{env.url}/rollouts/{HALTED}", "#chart-timeline g.ticket-bar")

    bars = drawn(browser, "#chart-timeline g.ticket-bar", "data-number", "data-instance", "data-state", "class")

    assert [bar[:3] for bar in bars] == ledger_tickets(env, HALTED) == [
        ["1", "api-1", "done"], ["2", "api-2", "failed"], ["3", "api-3", "cancelled"]]
    assert ["canary" in bar[3].split() for bar in bars] == [True, False, False]
    fills = drawn(browser, '#chart-timeline g[data-state="failed"] rect.update', "fill")
    assert fills == [[RED]]
    assert not browser.find_elements(By.CSS_SELECTOR, "#chart-timeline .open-end")
    shot(browser, "#chart-timeline", "rollout-timeline")


def test_a_page_whose_env_does_not_change_is_not_redrawn(env, browser):
    # Given a chart page, rendered with the change token of the env it shows
    open_page(browser, f"{env.url}/rollouts/{HALTED}", "#chart-timeline g.ticket-bar")
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-change-token")
    browser.execute_script("document.querySelector('#chart-timeline').skynetMark = 1;")

    # When the page has watched the env for several of the server's probes (0.5 s each here)
    time.sleep(2.5)

    # Then it has not re-fetched or swapped its content (a reader's selection or scroll stay; so do the
    # elements a test holds: the ages shown change each second, so a re-fetch would swap them)
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(function (e) { return e.name; });")
    assert [url for url in fetched if "partial=1" in url] == [], fetched
    assert browser.execute_script("return document.querySelector('#chart-timeline').skynetMark === 1;")
    assert browser.find_element(By.ID, "live").get_attribute("class") != "down"


def test_a_running_rollouts_unfinished_tickets_are_drawn_open(env, browser):
    open_page(browser, f"{env.url}/rollouts/{RUNNING}", "#chart-timeline g.ticket-bar")

    bars = drawn(browser, "#chart-timeline g.ticket-bar", "data-number", "data-instance", "data-state", "class")

    assert [bar[:3] for bar in bars] == ledger_tickets(env, RUNNING)
    assert [" open" in f" {bar[3]}" for bar in bars] == [False, True, True]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart-timeline .open-end")) == 2
    # The hostile instance id is shown as text, never as markup.
    assert browser.execute_script("return window.pwned === undefined;")
    assert not browser.find_elements(By.CSS_SELECTOR, "#main img")
    shot(browser, "#chart-timeline", "rollout-running")


def test_each_groups_history_has_a_column_per_rollout_oldest_first(env, browser):
    open_page(browser, f"{env.url}/groups", "svg.chart-history")

    for group, expected in ((API, [EARLIER, HALTED]), (RP, [RUNNING])):
        assert env.ledger.recent_rollouts(group, 10) == expected
        chart = f'svg.chart-history[data-group="{group}"]'
        for panel in ("duration", "handoff"):
            columns = drawn(browser, f"{chart} .panel-{panel} g.column", "data-rollout", across=True)
            assert [c[0] for c in columns] == expected, (group, panel)
    durations = drawn(browser, f'svg.chart-history[data-group="{API}"] .panel-duration rect.bar', "fill", across=True)
    assert durations[1] == [RED]  # the halted rollout
    handoffs = drawn(browser, f'svg.chart-history[data-group="{API}"] .panel-handoff g.column', "data-value",
                     across=True)
    # Per rollout, the median of its tickets' time from the previous ticket's end to their acknowledgement
    assert [float(h[0]) for h in handoffs] == pytest.approx([1.5, 2.0], abs=0.01)
    shot(browser, f'svg.chart-history[data-group="{API}"]', "group-history")


def test_the_fleet_chart_stacks_each_groups_instances_by_release(env, browser):
    open_page(browser, f"{env.url}/releases", "#chart-fleet g.group-bar")

    bars = drawn(browser, "#chart-fleet g.group-bar", "data-group", "data-total")
    slices = {group: drawn(browser, f'#chart-fleet g.group-bar[data-group="{group}"] g.slice', "data-release",
                           "data-count", "class", across=True) for group in (API, RP)}

    assert [bar[0] for bar in bars] == env.ledger.list_groups() == [API, RP]
    live = {group: [e for e in env.registry.endpoints("local") if e.group == group] for group in (API, RP)}
    assert [int(bar[1]) for bar in bars] == [len(live[API]), len(live[RP])]
    assert slices[API] == [[NEW, "2", "slice desired"], [OLD, "1", "slice"], ["stale", "1", "slice"]]
    assert [s[:2] for s in slices[RP]][0] == [RP_SHA, "1"]
    assert sorted(s[0] for s in slices[RP]) == sorted(e.release for e in live[RP])
    assert browser.execute_script("return window.pwned === undefined;")
    shot(browser, "#chart-fleet", "fleet-releases")


def test_each_chart_is_served_alone_as_an_svg_document(env, browser):
    client = env.app.test_client()
    for path in (f"/charts/rollouts/{HALTED}.svg", f"/charts/groups/{API}/history.svg", "/charts/fleet.svg"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.mimetype == "image/svg+xml" and answer.text.startswith("<svg"), path

    # As an image of its own in the browser (the picture a README can show)
    open_page(browser, f"{env.url}/charts/rollouts/{HALTED}.svg", "g.ticket-bar")
    assert len(browser.find_elements(By.CSS_SELECTOR, "g.ticket-bar")) == 3
    shot(browser, "svg", "rollout-timeline-alone")


@pytest.mark.parametrize("path", ["/charts/rollouts/r20990101-000000-ffffff.svg", "/charts/rollouts/..%2Fx.svg",
                                  "/charts/groups/no-such-group/history.svg", "/charts/groups/bad%20name/history.svg"])
def test_a_chart_of_something_unknown_is_a_404(env, path):
    answer = env.app.test_client().get(path)

    assert answer.status_code == 404 and "error" in answer.get_json()


def test_charts_are_behind_the_read_guard_when_reads_are_protected(env):
    protected = create_app(resolve(env.aws, "local"), env.aws, sender_for(env.environment).app,
                           Auth(TOKEN, "read-token-0123456789", protect_reads=True), max_age=60.0)
    client = protected.test_client()

    for path in (f"/charts/rollouts/{HALTED}.svg", f"/charts/groups/{API}/history.svg", "/charts/fleet.svg"):
        assert client.get(path).status_code == 401, path
    answer = client.get("/charts/fleet.svg", headers={"Authorization": "Bearer read-token-0123456789"})
    assert answer.status_code == 200 and API in answer.text
