"""Property-based tests of the receiver's logic: arbitrary bodies, headers and signatures.

The receiver here is the same ``Receiver`` the server runs, with a recording
``start_build`` and an in-memory delivery ledger in place of SQS and DynamoDB
(the HTTP tests in test_webhook.py cover those): what matters is that nothing
crashes and that nothing unsigned ever starts a build.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skynet_tasks.deploys import StartedBuild
from skynet_tasks.webhook.local import push_payload
from skynet_tasks.webhook.receiver import Receiver
from skynet_tasks.webhook.refnames import BadName, check_branch
from skynet_tasks.webhook.routing import Route
from skynet_tasks.webhook.signature import sign

pytestmark = pytest.mark.timeout(120)

SECRET = b"fuzz-secret"
ROUTES = [Route("sample-app", "main", "local", "api", "local-api")]


class MemoryDeliveries:
    def __init__(self) -> None:
        self.answers: dict[str, dict[str, Any] | None] = {}

    def claim(self, delivery: str) -> dict[str, Any] | None:
        if delivery in self.answers:
            return self.answers[delivery] or {"duplicate": True}
        self.answers[delivery] = None
        return None

    def record(self, delivery: str, response: dict[str, Any]) -> None:
        self.answers[delivery] = response

    def release(self, delivery: str) -> None:
        self.answers.pop(delivery, None)


def receiver() -> tuple[Receiver, list[str]]:
    started: list[str] = []

    def start_build(route: Route, sha: str, forced: bool) -> StartedBuild:
        started.append(sha)
        return StartedBuild(route.group, sha, "r-fuzz")

    def older(route: Route, sha: str) -> bool:
        return False

    return Receiver(SECRET, ROUTES, start_build, MemoryDeliveries(), older, max_body=64 * 1024), started  # type: ignore[arg-type]


header_names = st.sampled_from(["content-type", "x-github-event", "x-github-delivery", "x-hub-signature-256",
                                "x-hub-signature", "user-agent"])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=4), max_leaves=20)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(headers=st.dictionaries(header_names, st.text(max_size=80), max_size=6), body=st.binary(max_size=2048))
def test_arbitrary_unsigned_requests_never_crash_and_never_build(headers, body):
    hook, started = receiver()

    response = hook.handle(headers, body)

    assert response.status < 500
    assert "error" in response.body or "ignored" in response.body or "pong" in response.body
    assert started == []


@FUZZ
@given(body=st.binary(max_size=2048), signature=st.text(max_size=80),
       event=st.sampled_from(["push", "ping", "issues", ""]))
def test_a_wrong_signature_is_always_refused(body, signature, event):
    hook, started = receiver()
    headers = {"content-type": "application/json", "x-github-event": event, "x-github-delivery": "d",
               "x-hub-signature-256": signature}

    response = hook.handle(headers, body)

    if signature != sign(SECRET, body):
        assert response.status == 401
    assert started == []


@FUZZ
@given(payload=st.dictionaries(st.sampled_from(["ref", "after", "before", "repository", "commits", "deleted",
                                                "head_commit", "hook_id"]), json_values, max_size=8),
       event=st.sampled_from(["push", "ping"]))
def test_signed_but_malformed_payloads_get_4xx_or_are_ignored_never_5xx(payload, event):
    hook, started = receiver()
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json", "x-github-event": event, "x-github-delivery": "d",
               "x-hub-signature-256": sign(SECRET, body)}

    response = hook.handle(headers, body)

    assert response.status in (200, 202, 400)
    assert started == []  # no random payload is a well-formed push of a tracked branch


@FUZZ
@given(branch=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
                       min_size=1, max_size=30))
def test_branch_names_are_checked_like_git_check_ref_format(branch):
    git = subprocess.run(["git", "check-ref-format", "--branch", branch], capture_output=True, check=False)
    try:
        check_branch(branch)
        ours = True
    except BadName:
        ours = False
    # Ours may be stricter than git (a leading '-' is refused), never more lenient.
    assert not ours or git.returncode == 0, f"{branch!r} accepted by us, refused by git"


@FUZZ
@given(branch=st.text(alphabet="abc/.-_@{}~^:?*[\\ \n;", min_size=1, max_size=12))
def test_a_push_naming_a_branch_git_refuses_is_a_400_and_builds_nothing(branch):
    hook, started = receiver()
    body = json.dumps(push_payload("sample-app", branch, "1" * 40, "2" * 40)).encode()
    headers = {"content-type": "application/json", "x-github-event": "push", "x-github-delivery": "d",
               "x-hub-signature-256": sign(SECRET, body)}

    response = hook.handle(headers, body)

    try:
        check_branch(branch)
    except BadName:
        assert response.status == 400 and started == []
    else:
        assert response.status == 202
        assert started == (["2" * 40] if branch == "main" else [])
