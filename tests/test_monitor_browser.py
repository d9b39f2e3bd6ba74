"""The dashboard in real headless Chromium, against a real local cluster of three instances.

Chromium and chromedriver are Debian's (``chromium``, ``chromium-driver``),
driven by Selenium with the system driver; nothing is downloaded. Screenshots
go to tests/artifacts/.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browserkit import headless_chromium
from clusterkit import ledger, sender_for
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from skynet_tasks.deploys import deploy_ref
from skynet_tasks.local.cluster import LocalCluster
from skynet_tasks.local.sample_repo import commit_files
from skynet_tasks.monitor.app import create_app
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.resources import resolve

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(200)]

ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "browser-test-token-0123456789"
SAMPLE_SPEC = (Path(__file__).parent.parent / "skynet_tasks" / "local" / "sample_app" / "skynet.yml").read_text()
# Updates that last two seconds, so that the page's refreshes see each ticket updating: the sample
# app alone updates faster than the page refreshes.
WATCHABLE_SPEC = SAMPLE_SPEC + 'hooks:\n  before_install:\n    - [python3, -c, "import time; time.sleep(2)"]\n'


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path_factory.mktemp("cluster"), heartbeat_interval=1.0, heartbeat_max_age=15.0)
    cluster.up(api=3)
    yield cluster
    cluster.down()


@pytest.fixture(scope="module")
def dashboard(cluster: LocalCluster) -> Iterator[str]:
    """The dashboard in this process, on the cluster's moto server: werkzeug's threaded server (Flask's own).

    In process, so that the pages can refresh faster than ``skynet monitor serve`` makes them.
    """
    info = cluster.require_info()
    messenger = sender_for(info.environment)
    aws = cluster.aws()
    app = create_app(resolve(aws, "local"), aws, messenger.app, Auth(TOKEN), max_age=15.0, poll_seconds=0.5,
                     allowed_hosts=("127.0.0.1", "localhost"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium("--window-size=1280,1000") as driver:
        yield driver


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("work") / "sample-app"


def shot(driver: WebDriver, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"monitor-{name}.png"))


def ticket_states(driver: WebDriver) -> tuple[tuple[int, str], ...]:
    """The ticket line as the page shows it now: (number, state) in order."""
    script = ("return Array.from(document.querySelectorAll('li.ticket'))"
              ".map(function (li) { return [li.id, li.getAttribute('data-state')]; });")
    rows = driver.execute_script(script) or []
    return tuple((int(row[0].split("-")[1]), str(row[1])) for row in rows)


def click(driver: WebDriver, element_id: str) -> None:
    """Click a button the page may be re-rendering at this very moment (it refreshes itself)."""
    for _ in range(10):
        try:
            driver.find_element(By.ID, element_id).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.05)
    raise AssertionError(f"#{element_id} kept being replaced; could not click it")


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.execute_script(
        "var e = document.getElementById(arguments[0]); return e ? e.textContent : '';", element_id))


def rollout_state(driver: WebDriver) -> str:
    return text_of(driver, "rollout-state")


def deploy(cluster: LocalCluster) -> str:
    messenger = sender_for(cluster.require_info().environment)
    return deploy_ref(ledger(cluster), messenger, "local-api", "main", source="browser test").rollout_id


def watch(driver: WebDriver, until_state: tuple[str, ...], timeout: float, on_updating: str | None = None,
          until_line: tuple[tuple[int, str], ...] | None = None) -> list[tuple[tuple[int, str], ...]]:
    """Every distinct ticket line the page showed until the rollout reached one of ``until_state``
    (or the ticket line became ``until_line``)."""
    seen: list[tuple[tuple[int, str], ...]] = []
    deadline = time.monotonic() + timeout
    shot_taken = False
    while time.monotonic() < deadline:
        states = ticket_states(driver)
        if not seen or seen[-1] != states:
            seen.append(states)
        if on_updating and not shot_taken and any(s == "updating" for _, s in states):
            shot(driver, on_updating)
            shot_taken = True
        if rollout_state(driver) in until_state or (until_line is not None and states == until_line):
            seen.append(ticket_states(driver))
            return seen
        time.sleep(0.1)
    raise AssertionError(f"rollout did not reach {until_state} within {timeout}s; the page showed {seen}")


def test_the_rollout_page_shows_tickets_advancing_during_a_real_rollout(cluster, dashboard, browser, workdir):
    # Given the rollout page of a rollout that has just been requested
    commit_files(cluster.require_info().app_repo, workdir, {"VERSION": "release two\n", "skynet.yml": WATCHABLE_SPEC},
                 "Release two")
    rollout_id = deploy(cluster)
    browser.get(f"{dashboard}/rollouts/{rollout_id}")
    browser.execute_script("window.skynetLoadedOnce = true;")

    # When the rollout runs, the page is watched without reloading it
    # (a query may see a transaction's items one by one: the rollout "completed" a refresh before
    # its last ticket "done", so the watch ends on the line, and the state is checked after)
    all_done = ((1, "done"), (2, "done"), (3, "done"))
    seen = watch(browser, ("halted",), 120, on_updating="rollout-updating", until_line=all_done)
    WebDriverWait(browser, 5).until(lambda d: rollout_state(d) == "completed")
    shot(browser, "rollout-completed")

    # Then the page showed tickets updating one at a time, then every one done, all without a reload
    assert seen[-1] == all_done, seen
    assert any(any(s == "updating" for _, s in line) for line in seen), seen
    assert all(sum(s == "updating" for _, s in line) <= 1 for line in seen), seen
    assert len(seen) >= 4, f"the page should have shown the line advance step by step: {seen}"
    assert browser.execute_script("return window.skynetLoadedOnce === true;"), "the page reloaded"


def test_a_halted_rollout_shows_the_failed_ticket_and_its_log_and_resume_resumes_it(
        cluster, dashboard, browser, workdir):
    # Given a release whose health check fails on ticket 2
    commit_files(cluster.require_info().app_repo, workdir,
                 {"skynet.yml": WATCHABLE_SPEC, "fail-on.txt": "ticket:2\n", "VERSION": "bad release\n"},
                 "Release that fails its health check on ticket 2")
    rollout_id = deploy(cluster)
    browser.get(f"{dashboard}/rollouts/{rollout_id}")

    # When it halts (a transaction's items may reach a query one by one: the next refresh shows them all)
    halted_line = ((1, "done"), (2, "failed"), (3, "cancelled"))
    seen = watch(browser, ("completed",), 120, until_line=halted_line)

    # Then the page shows the failed ticket, the cancelled one, and the failing step's log
    assert seen[-1] == halted_line, seen
    WebDriverWait(browser, 5).until(lambda d: rollout_state(d) == "halted")
    assert "health check failed" in text_of(browser, "ticket-2")
    log = text_of(browser, "failed-log")
    assert "health check failed on purpose" in log and "rolled back" in log
    shot(browser, "rollout-halted")

    # When the operator clicks resume without the token, it is refused and nothing moves
    click(browser, "action-resume")
    WebDriverWait(browser, 10).until(lambda d: "refused (401)" in text_of(d, "notice"))
    time.sleep(1.5)
    assert rollout_state(browser) == "halted"

    # When the operator enters the token and clicks resume
    token = browser.find_element(By.ID, "token")
    token.send_keys(TOKEN)
    click(browser, "action-resume")
    WebDriverWait(browser, 10).until(lambda d: "resume requested by dashboard:token" in text_of(d, "notice"))

    # Then the cancelled ticket gets its place back and is updated, and the page follows it live
    # (the rollout stays running: its failed member still needs a retry or a fix)
    seen = watch(browser, (), 90, until_line=((1, "done"), (2, "failed"), (3, "done")))
    shot(browser, "rollout-resumed")
    assert any(line[2] == (3, "updating") or line[2] == (3, "waiting") for line in seen), seen
    assert rollout_state(browser) == "running"
    actions = ledger(cluster).actions("local-api")
    assert (actions[0]["action"], actions[0]["actor"], actions[0]["rollout_id"]) == (
        "resume", "dashboard:token", rollout_id)


def test_the_other_pages_show_the_clusters_instances_releases_and_queues(cluster, dashboard, browser):
    # Given the cluster after the two rollouts above; when each page is opened, then it shows what it is about
    expectations = {
        "groups": ("local-api", "api-1", "api-2", "api-3", "resume"),
        "instances": ("api-1", "api-2", "api-3", "drain"),
        "releases": ("Release two", "Release that fails its health check on ticket 2", "build log"),
        "queues": ("skynet-local-local-api-maint.fifo", "skynet-local-inst-api-1"),
    }
    for page, texts in expectations.items():
        browser.get(f"{dashboard}/{page}")
        WebDriverWait(browser, 10).until(lambda d, texts=texts: all(t in text_of(d, "main") for t in texts))
        shot(browser, f"page-{page}")
