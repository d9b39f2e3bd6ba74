"""In headless Chromium: a visible dashboard tab refreshes when the env changes, a hidden one sends nothing.

The dashboard runs in this process on the seeded moto env (tests/monitorkit.py), behind a WSGI
wrapper that logs every request; a thread keeps changing the env (an instance's health) meanwhile,
so a tab that still polled would show up in the log.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from browserkit import headless_chromium
from monitorkit import TOKEN, Seeded, seeded_env
from werkzeug.serving import make_server

from skynet_tasks.monitor.app import create_app
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(120)


class RequestLog:
    """A WSGI wrapper that keeps the path and query of every request, in order."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        with self.lock:
            self.seen.append(f"{environ['PATH_INFO']}?{environ.get('QUERY_STRING', '')}")
        return self.app(environ, start_response)

    def count(self) -> int:
        with self.lock:
            return len(self.seen)

    def since(self, start: int) -> list[str]:
        with self.lock:
            return self.seen[start:]


@pytest.fixture(scope="module")
def env() -> Iterator[Seeded]:
    with seeded_env() as seeded:
        yield seeded


@pytest.fixture()
def served(env: Seeded) -> Iterator[tuple[str, RequestLog]]:
    app = create_app(resolve(env.aws, "local"), env.aws, _celery(env), Auth(TOKEN), max_age=600.0, poll_seconds=0.2,
                     allowed_hosts=("127.0.0.1", "localhost"))
    requests = RequestLog(app.wsgi_app)
    app.wsgi_app = requests  # type: ignore[method-assign]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", requests
    server.shutdown()
    thread.join(5)


def _celery(env: Seeded) -> Any:
    from clusterkit import sender_for

    return sender_for(env.environment).app


@pytest.fixture()
def changing(env: Seeded) -> Iterator[None]:
    """The env changing every 0.3 s (api-1 draining, then healthy, then draining...) until the test ends."""
    stop = threading.Event()

    def flip() -> None:
        healths = ("draining", "healthy")
        n = 0
        while not stop.wait(0.3):
            env.registry.set_health("local", "api", "api-1", healths[n % 2])
            n += 1

    thread = threading.Thread(target=flip, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(5)


def partials(paths: list[str]) -> int:
    return sum(p.startswith("/instances?") and "partial=1" in p for p in paths)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_a_hidden_tab_makes_no_requests_and_refreshes_when_shown_again(served, changing):
    url, requests = served
    with headless_chromium("--window-size=1280,900") as browser:
        browser.get(f"{url}/instances")
        dashboard = browser.current_window_handle
        # Visible: the page follows the changes (several partial fetches while the env changes).
        start = requests.count()
        wait_for(lambda: partials(requests.since(start)) >= 3, 20, "a visible tab refreshing on change")
        assert browser.execute_script("return document.visibilityState") == "visible"

        # Hidden behind another tab: from the moment it knows, not one request.
        browser.switch_to.new_window("tab")
        browser.get("about:blank")
        time.sleep(1.0)  # a request already on its way when the tab was hidden may still arrive
        quiet_from = requests.count()
        time.sleep(4.0)  # 13 changes of the env, each of which a visible tab would fetch
        assert requests.since(quiet_from) == []

        # Shown again: it refreshes at once and follows the changes again.
        browser.switch_to.window(dashboard)
        assert browser.execute_script("return document.visibilityState") == "visible"
        back = requests.count()
        wait_for(lambda: partials(requests.since(back)) >= 2, 20, "the tab refreshing once shown again")
