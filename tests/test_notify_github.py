"""GitHub's Deployments API as the notifier calls it, against a local server that speaks the documented API
(REST API version 2022-11-28): the paths, the bodies, the Accept, version and auth headers, and the
answers (201 with the deployment or status, lists for GETs, 401 for a bad token, 422 for a bad body).

The local server is plain HTTP on the loopback address: the config accepts http only there, and any
other API base URL must be https.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from skynet_tasks.notify.delivery import deliver
from skynet_tasks.notify.events import Notice, NoticeKind
from skynet_tasks.notify.targets import CONFIG_FILE, NotifyConfigError, load_config
from skynet_tasks.notify.transport import NotifyRefused, NotifyRetry
from skynet_tasks.states import RolloutKind, RolloutState

pytestmark = pytest.mark.timeout(60)

TOKEN, REPO, GROUP, SHA = "ghp_test-token", "acme/shop", "prod-api", "a1" * 20
PREFIX = "/api/v3"  # GitHub Enterprise Server's base path: the notifier keeps whatever path the base URL has
STATES = {"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}


class FakeGitHub:
    """Deployments and their statuses, kept as GitHub keeps them, and every request seen."""

    def __init__(self) -> None:
        self.deployments: list[dict[str, Any]] = []
        self.statuses: dict[int, list[dict[str, Any]]] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.down = 0  # answer 502 to this many requests first
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length)) if length else None
                headers = {k.lower(): v for k, v in self.headers.items()}
                fake.requests.append((method, self.path, headers, body))
                if fake.down > 0:
                    fake.down -= 1
                    return self._answer(502, {"message": "Server Error"})
                if headers.get("authorization") != f"Bearer {TOKEN}":
                    return self._answer(401, {"message": "Bad credentials"})
                status, answer = fake.route(method, self.path, body)
                self._answer(status, answer)

            def do_GET(self) -> None:  # noqa: N802 - http.server's names
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{PREFIX}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        parts = urlsplit(path)
        base = f"{PREFIX}/repos/{REPO}/deployments"
        if parts.path == base and method == "GET":
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            return 200, [d for d in reversed(self.deployments)  # newest first, as GitHub lists them
                         if d["sha"] == query.get("sha", d["sha"]) and d["environment"] == query.get("environment",
                                                                                                      d["environment"])]
        if parts.path == base and method == "POST":
            if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
                return 422, {"message": "Invalid request.", "errors": ["ref"]}
            deployment = {"id": 1000 + len(self.deployments), "sha": body["ref"], "ref": body["ref"],
                          "task": body.get("task", "deploy"), "payload": body.get("payload", {}),
                          "environment": body.get("environment", "production"), "description": body.get("description")}
            self.deployments.append(deployment)
            self.statuses[deployment["id"]] = []
            return 201, deployment
        if parts.path.startswith(base + "/") and parts.path.endswith("/statuses"):
            deployment = int(parts.path[len(base) + 1:-len("/statuses")])
            if deployment not in self.statuses:
                return 404, {"message": "Not Found"}
            if method == "GET":
                return 200, list(reversed(self.statuses[deployment]))
            if not isinstance(body, dict) or body.get("state") not in STATES:
                return 422, {"message": "Invalid request.", "errors": ["state"]}
            status = {"id": len(self.statuses[deployment]) + 1, "state": body["state"],
                      "description": body.get("description", ""), "environment": body.get("environment")}
            self.statuses[deployment].append(status)
            return 201, status
        return 404, {"message": "Not Found"}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    found = FakeGitHub()
    yield found
    found.stop()


@pytest.fixture
def config(github, tmp_path) -> Path:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "github-token").write_text(TOKEN + "\n")
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"github": {"repo": REPO, "api_url": github.url}}))
    return tmp_path


def notice(kind: NoticeKind, state: RolloutState = RolloutState.RUNNING, rollout: str = "r-1",
           rollout_kind: RolloutKind = RolloutKind.CODE, release: str = SHA, reason: str | None = None) -> Notice:
    return Notice(kind, rollout, GROUP, release, rollout_kind, state, 1700000000.0, reason)


def statuses(github: FakeGitHub) -> list[str]:
    [deployment] = github.deployments
    return [s["state"] for s in github.statuses[deployment["id"]]]


def test_a_rollout_is_one_deployment_of_its_sha_with_statuses_in_progress_then_success(github, config):
    for kind, state in ((NoticeKind.STARTED, RolloutState.RUNNING), (NoticeKind.PUBLISHED, RolloutState.RUNNING),
                        (NoticeKind.COMPLETED, RolloutState.COMPLETED)):
        assert deliver(config, "prod", None, "github", notice(kind, state))

    [deployment] = github.deployments
    assert deployment["sha"] == SHA and deployment["environment"] == GROUP and deployment["task"] == "deploy"
    assert statuses(github) == ["in_progress", "in_progress", "success"]
    [create] = [r for r in github.requests if r[0] == "POST" and r[1] == f"{PREFIX}/repos/{REPO}/deployments"]
    _, _, headers, body = create
    assert body["ref"] == SHA and body["auto_merge"] is False and body["required_contexts"] == []
    assert body["environment"] == GROUP and body["payload"] == {"skynet_rollout": "r-1"}
    for _, _, headers, _ in github.requests:  # every call, as the API documents it
        assert headers["accept"] == "application/vnd.github+json"
        assert headers["authorization"] == f"Bearer {TOKEN}" and headers["x-github-api-version"] == "2022-11-28"
    status_posts = [r for r in github.requests if r[0] == "POST" and r[1].endswith("/statuses")]
    assert all(r[3]["environment"] == GROUP and len(r[3]["description"]) <= 140 for r in status_posts)


def test_a_halt_is_a_failure_status_with_its_reason(github, config):
    deliver(config, "prod", None, "github", notice(NoticeKind.STARTED))
    deliver(config, "prod", None, "github", notice(NoticeKind.HALTED, RolloutState.HALTED,
                                                   reason="ticket 2 on i-0b failed: health check"))

    assert statuses(github) == ["in_progress", "failure"]
    assert "health check" in github.statuses[github.deployments[0]["id"]][-1]["description"]


def test_a_redelivered_notice_never_makes_a_second_deployment(github, config):
    for _ in range(3):
        deliver(config, "prod", None, "github", notice(NoticeKind.STARTED))
    deliver(config, "prod", None, "github", notice(NoticeKind.STARTED, rollout="r-2"))  # another rollout: its own

    assert [d["payload"]["skynet_rollout"] for d in github.deployments] == ["r-1", "r-2"]


def test_a_late_start_never_overrides_the_end_of_a_deployment(github, config):
    # The completion went through while the start was still being retried.
    deliver(config, "prod", None, "github", notice(NoticeKind.COMPLETED, RolloutState.COMPLETED))
    deliver(config, "prod", None, "github", notice(NoticeKind.STARTED))

    assert statuses(github) == ["success"]


def test_config_and_agent_rollouts_are_not_shown_on_a_commit(github, config):
    for kind in (RolloutKind.CONFIG, RolloutKind.AGENT):
        deliver(config, "prod", None, "github", notice(NoticeKind.STARTED, rollout_kind=kind, release="cfg-17"))

    assert github.requests == []


def test_a_bad_token_is_refused_for_good_and_a_server_error_is_retried(github, config):
    (config / "secrets" / "github-token").write_text("ghp_revoked")
    with pytest.raises(NotifyRefused, match="HTTP 401"):
        deliver(config, "prod", None, "github", notice(NoticeKind.STARTED))

    (config / "secrets" / "github-token").write_text(TOKEN)
    github.down = 1
    with pytest.raises(NotifyRetry, match="HTTP 502"):
        deliver(config, "prod", None, "github", notice(NoticeKind.STARTED))
    assert github.deployments == []


@pytest.mark.parametrize(("github_config", "rule"), [
    ({"repo": "acme"}, "github.repo"),
    ({"repo": REPO, "api_url": "http://github.example.com/api/v3"}, "plain http"),
    ({"repo": REPO, "api_url": "https://user:pw@github.example.com/"}, "credentials"),
    ({"repo": REPO, "token_file": "../../etc/shadow"}, "leaves the config directory"),
    ({"repo": REPO, "token_file": "/etc/shadow"}, "absolute"),
    ({"repo": REPO, "org": "acme"}, "unknown key"),
])
def test_a_bad_github_config_is_refused_naming_the_key(tmp_path, github_config, rule):
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"github": github_config}))

    with pytest.raises(NotifyConfigError, match=rule):
        load_config(tmp_path)
