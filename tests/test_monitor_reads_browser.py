"""Reads behind a token, in real headless Chromium: the page asks, and once given the token it keeps refreshing.

Against the dashboard app on moto's server with seeded state (no cluster needed); Debian's
Chromium and chromedriver, as in test_monitor_browser.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from browserkit import headless_chromium
from clusterkit import sender_for
from monitorkit import GROUP, TOKEN, Seeded, seeded_env
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from skynet_tasks.monitor.app import create_app
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.registry import Endpoint
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(120)

READ_TOKEN = "browser-read-token-0123456789"


@pytest.fixture(scope="module")
def env() -> Iterator[Seeded]:
    with seeded_env() as seeded:
        yield seeded


@pytest.fixture(scope="module")
def dashboard(env: Seeded) -> Iterator[str]:
    """The dashboard with reads protected, served by werkzeug in this process; its port."""
    app = create_app(resolve(env.aws, "local"), env.aws, sender_for(env.environment).app,
                     Auth(TOKEN, READ_TOKEN, protect_reads=True), max_age=60.0, poll_seconds=0.5,
                     allowed_hosts=("127.0.0.1", "localhost"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield str(server.server_port)
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with headless_chromium() as driver:
        yield driver


def test_without_the_token_the_page_shows_nothing_of_the_env(browser, dashboard):
    browser.get(f"http://127.0.0.1:{dashboard}/groups")

    # (Chromium shows its own prompt for the 401, or nothing in headless mode)
    assert "api-2" not in browser.page_source and GROUP not in browser.page_source
    assert not browser.find_elements(By.ID, "main")


def test_with_the_read_token_the_page_shows_the_env_and_keeps_refreshing(env, browser, dashboard):
    # Given the read-only token typed into the browser's basic-auth prompt (as credentials in the URL)
    browser.get(f"http://viewer:{READ_TOKEN}@127.0.0.1:{dashboard}/instances")
    assert "127.0.0.1:9002" in browser.find_element(By.ID, "main").text

    # When an instance joins the group
    env.registry.register("local", "api", Endpoint("api-7", GROUP, "127.0.0.1", 9007, "a" * 40, "healthy",
                                                   time.time()))

    # Then the page's own refresh (a fetch without credentials of its own) shows it
    WebDriverWait(browser, 20, poll_frequency=0.2).until(
        lambda driver: "127.0.0.1:9007" in driver.find_element(By.ID, "main").text)
    assert browser.find_element(By.ID, "live").get_attribute("class") != "down"


def test_the_deploy_form_sends_the_overrides_typed_and_says_what_was_requested(env, browser, dashboard):
    # Given a reader's page of the groups, the operator's token typed into the header's field
    browser.get(f"http://viewer:{READ_TOKEN}@127.0.0.1:{dashboard}/groups")
    browser.execute_script("window.confirm = function () { return true; };")
    token = browser.find_element(By.ID, "token")
    token.clear()
    token.send_keys(TOKEN)

    # When the operator opens the group's deploy form, fills the ref, a manual canary and a window, and submits
    browser.find_element(By.CSS_SELECTOR, f"#deploy-{GROUP} summary").click()
    form = browser.find_element(By.CSS_SELECTOR, f"#deploy-{GROUP} form")
    form.find_element(By.NAME, "ref").send_keys("e" * 40)
    form.find_element(By.CSS_SELECTOR, "select[name=canary] option[value=manual]").click()
    form.find_element(By.NAME, "windows").send_keys("mon-fri 09:00-17:00 Europe/Paris")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()

    # Then the page says which rollout it started, and that rollout carries the overrides (the rest: skynet.yml's)
    WebDriverWait(browser, 20, poll_frequency=0.2).until(
        lambda driver: "requested by dashboard:token" in driver.find_element(By.ID, "notice").text)
    rollout_id = browser.find_element(By.ID, "notice").text.rsplit("rollout ", 1)[1].strip()
    record = env.ledger.rollout_item(rollout_id) or {}
    assert (record["promotion"], record["windows"]) == ("manual", ["mon,tue,wed,thu,fri 09:00:00-17:00:00 "
                                                                  "Europe/Paris"])
    assert "max_parallel" not in record and "ignore_windows" not in record
