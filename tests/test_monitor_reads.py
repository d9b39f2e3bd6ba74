"""Reads behind authentication: with ``--reads token``, every route of the dashboard needs a token.

The routes are enumerated from the Flask app itself, so a route added later is covered
without touching this file (and the read test tells what sample value a new argument needs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from monitorkit import BAD_SHA, GROUP, HALTED, TOKEN, Seeded, basic, same_origin_headers, seeded_env

from skynet_tasks.cli.monitor import monitor
from skynet_tasks.monitor.app import OPEN_PATHS, create_app
from skynet_tasks.monitor.auth import Auth, AuthConfigError, check_bind
from skynet_tasks.monitor.local import write_token
from skynet_tasks.resources import resolve

pytestmark = pytest.mark.timeout(90)

READ_TOKEN = "read-only-token-abcdef0123456789"
# A value for each route argument, naming something the seeded env holds.
SAMPLES = {"rollout_id": HALTED, "number": 2, "group": GROUP, "sha": BAD_SHA, "instance": "api-2",
           "action": "pause", "filename": "dashboard.js"}
IGNORED_METHODS = {"HEAD", "OPTIONS"}  # answered by Flask for every route, through the same check


@pytest.fixture(scope="module")
def env() -> Iterator[Seeded]:
    with seeded_env() as seeded:
        yield seeded


@pytest.fixture(scope="module")
def protected(env: Seeded) -> Flask:
    from clusterkit import sender_for

    return create_app(resolve(env.aws, "local"), env.aws, sender_for(env.environment).app,
                      Auth(TOKEN, READ_TOKEN, protect_reads=True), 60.0)


def routes(app: Flask, methods: set[str]) -> list[tuple[str, str]]:
    """Every (method, path) the app serves with one of ``methods``, its arguments filled from SAMPLES."""
    adapter = app.url_map.bind("localhost")
    found = []
    for rule in app.url_map.iter_rules():
        missing = set(rule.arguments) - set(SAMPLES)
        assert not missing, f"route {rule.rule}: add a sample value for {missing} to SAMPLES"
        path = adapter.build(rule.endpoint, {name: SAMPLES[name] for name in rule.arguments})
        found += [(method, path) for method in sorted((rule.methods or set()) & methods)]
    return found


def state_of(env: Seeded) -> tuple[str, int, int, str]:
    """What an action would change: the rollout's state, the audit trail, queued events, api-2's health."""
    rollout, found = env.ledger.rollout_item(HALTED), env.registry.find("local", "api-2")
    assert rollout is not None and found is not None
    return rollout["state"], len(env.ledger.actions(GROUP)), env.maintenance_depth(), found[1].health


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="no credentials"),
    pytest.param({"Authorization": "Bearer not-the-token"}, id="wrong token"),
    pytest.param({"Authorization": basic("mallory", "guess")}, id="wrong basic password"),
    pytest.param({"Authorization": f"Token {TOKEN}"}, id="unknown scheme"),
])
def test_with_reads_protected_every_route_answers_401_without_a_token(env, protected, headers):
    client = protected.test_client()
    before = state_of(env)
    every = routes(protected, {"GET", "POST", "PUT", "PATCH", "DELETE"})
    assert len(every) >= 20  # the enumeration found the app's routes, not an empty list

    answers = {(method, path): client.open(path, method=method, headers={**same_origin_headers(), **headers})
               for method, path in every if path not in OPEN_PATHS}
    unknown = client.get("/api/not-a-route", headers=headers)

    refused = {route: answer.status_code for route, answer in answers.items() if answer.status_code != 401}
    assert refused == {}
    assert all(a.headers["WWW-Authenticate"].startswith("Basic ") for a in answers.values())
    assert unknown.status_code == 401  # which routes exist is not told either
    assert "seeded" not in client.get(f"/api/rollouts/{HALTED}", headers=headers).get_data(as_text=True)
    assert state_of(env) == before


def test_only_the_liveness_probe_is_open(protected):
    assert OPEN_PATHS == {"/health"}
    answer = protected.test_client().get("/health")
    assert answer.status_code == 200 and answer.get_json() == {"ok": True, "env": "local"}


@pytest.mark.parametrize("authorization", [
    pytest.param(f"Bearer {READ_TOKEN}", id="read-only token"),
    pytest.param(basic("viewer", READ_TOKEN), id="read-only token as basic password"),
    pytest.param(f"Bearer {TOKEN}", id="write token"),
])
def test_with_a_token_every_read_answers(protected, authorization):
    client = protected.test_client()

    answers = {path: client.get(path, headers={"Authorization": authorization}).status_code
               for _, path in routes(protected, {"GET"})}

    assert {path: code for path, code in answers.items() if code not in (200, 302)} == {}
    assert answers["/"] == 302 and answers["/groups"] == 200 and answers["/metrics"] == 200
    rollout = client.get(f"/api/rollouts/{HALTED}", headers={"Authorization": authorization}).get_json()
    assert [t["state"] for t in rollout["tickets"]] == ["done", "failed"]


def test_the_read_only_token_cannot_act(env, protected):
    client = protected.test_client()
    before = state_of(env)
    actions = routes(protected, {"POST"})
    assert len(actions) >= 3

    answers = [client.post(path, headers={**same_origin_headers(), "Authorization": authorization})
               for _, path in actions for authorization in (f"Bearer {READ_TOKEN}", basic("viewer", READ_TOKEN))]

    assert [a.status_code for a in answers] == [403] * len(answers)
    assert "read-only token may not act" in answers[0].get_json()["error"]
    assert state_of(env) == before


def test_the_write_token_still_acts_with_reads_protected(env, protected):
    answer = protected.test_client().post("/api/instances/api-1/drain",
                                          headers={**same_origin_headers(), "Authorization": f"Bearer {TOKEN}"})

    assert answer.status_code == 202, answer.get_json()
    newest = env.ledger.actions(GROUP)[0]
    assert (newest["action"], newest["actor"], newest["instance"]) == ("drain", "dashboard:token", "api-1")


def test_reads_stay_open_by_default(env):
    client = env.app.test_client()

    assert client.get("/groups").status_code == 200
    assert client.get(f"/api/rollouts/{HALTED}").status_code == 200
    assert client.get("/metrics").status_code == 200


# ---- configuration ---------------------------------------------------------------------------
def test_settings_that_cannot_be_served_safely_are_refused(tmp_path: Path):
    with pytest.raises(AuthConfigError, match="nobody could read"):
        Auth(protect_reads=True)
    with pytest.raises(AuthConfigError, match="add --reads token"):
        Auth(TOKEN, READ_TOKEN)
    with pytest.raises(AuthConfigError, match="could act"):
        Auth(TOKEN, TOKEN, protect_reads=True)
    read_token = tmp_path / "read-token"
    write_token(read_token)
    os.chmod(read_token, 0o640)  # the refusal is what is tested
    with pytest.raises(AuthConfigError, match="read-only token file .* readable by others"):
        Auth.from_files(None, read_token, protect_reads=True)


def test_a_read_only_dashboard_may_bind_a_public_address(tmp_path: Path):
    # Reads need the read-only token and actions are refused to everybody: nothing is open.
    check_bind("0.0.0.0", Auth(read_token=READ_TOKEN, protect_reads=True))  # noqa: S104
    with pytest.raises(AuthConfigError, match="without --token-file"):
        check_bind("0.0.0.0", Auth())  # noqa: S104 - the refusal is what is tested


def test_the_command_refuses_protected_reads_without_a_token_and_a_read_token_with_open_reads(tmp_path: Path):
    read_token = tmp_path / "read-token"
    write_token(read_token)

    no_token = CliRunner().invoke(monitor, ["serve", "--reads", "token", "--port", "1"])
    open_reads = CliRunner().invoke(monitor, ["serve", "--read-token-file", str(read_token), "--port", "1"])
    by_variable = CliRunner().invoke(monitor, ["serve", "--port", "1"], env={"SKYNET_DASHBOARD_READS": "token"})

    assert no_token.exit_code != 0 and "nobody could read" in no_token.output
    assert open_reads.exit_code != 0 and "add --reads token" in open_reads.output
    assert by_variable.exit_code != 0 and "nobody could read" in by_variable.output
