"""The dashboard's pages, JSON API, metrics and action guard, against moto's server with seeded state.

Deploying from the dashboard is in ``test_monitor_deploy.py``.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from monitorkit import (
    BAD_SHA,
    BEARER,
    GROUP,
    HALTED,
    TOKEN,
    Seeded,
    basic,
    same_origin_headers,
    seeded_env,
    state_of,
)

from skynet_tasks import names
from skynet_tasks.cli.monitor import monitor
from skynet_tasks.monitor.auth import Auth, AuthConfigError, check_bind
from skynet_tasks.monitor.data import ticket_timeline
from skynet_tasks.monitor.local import write_token
from skynet_tasks.taskruns import TaskRuns

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def env():
    with seeded_env() as seeded:
        yield seeded


# ---- reading ------------------------------------------------------------------------------
def test_the_rollout_page_shows_the_ticket_line_and_the_failing_steps_log(env):
    client = env.app.test_client()

    page = client.get(f"/rollouts/{HALTED}")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="ticket-1" data-state="done"' in html
    assert 'id="ticket-2" data-state="failed"' in html
    assert "health check failed on purpose" in html  # the failing step's log, inline
    assert "<script src=\"/static/dashboard.js\"" in html
    partial = client.get(f"/rollouts/{HALTED}?partial=1").get_data(as_text=True)
    assert "<html" not in partial and 'id="ticket-2"' in partial
    assert client.get("/static/dashboard.js").status_code == 200


def test_every_page_renders_the_seeded_env(env):
    client = env.app.test_client()
    expectations = {"/groups": "api-2", "/instances": "127.0.0.1:9002", "/rollouts": HALTED,
                    "/releases": "Bad release", "/queues": "skynet-local-local-api-maint.fifo",
                    "/tasks": "health check failed"}
    for path, text in expectations.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert text in response.get_data(as_text=True), path


def test_the_api_gives_durations_hand_offs_and_logs(env):
    client = env.app.test_client()

    rollout = client.get(f"/api/rollouts/{HALTED}").get_json()

    assert [t["state"] for t in rollout["tickets"]] == ["done", "failed"]
    assert rollout["failed_ticket"] == 2
    assert rollout["tickets"][1]["handoff"] == pytest.approx(1.0, abs=0.01)
    assert rollout["tickets"][1]["updated"] == pytest.approx(10.0, abs=0.01)
    assert "rolled back" in rollout["failed_log"]
    log = client.get(f"/api/rollouts/{HALTED}/tickets/2/log")
    assert log.status_code == 200 and log.mimetype == "text/plain"
    assert client.get(f"/api/releases/{GROUP}/{BAD_SHA}/log").get_data(as_text=True) == "build ok\n"
    assert client.get("/api/rollouts/nope/tickets/9/log").status_code == 404
    assert client.get("/api/groups/NOT_A_GROUP").status_code == 404
    queues = {q["name"]: q for q in client.get("/api/queues").get_json()}
    assert queues[names.maintenance_queue("local", GROUP)]["dead_letter"] == 0
    assert client.get("/api/openapi.json").get_json()["openapi"].startswith("3.")


def test_metrics_are_prefixed_and_count_instances_by_release(env):
    text = env.app.test_client().get("/metrics").get_data(as_text=True)

    assert f'skynet_instances{{env="local",group="{GROUP}",health="healthy",release="{"a" * 40}"}} 2.0' in text
    assert f'skynet_ticket_failures_total{{env="local",group="{GROUP}"}} 1.0' in text
    assert "skynet_ticket_handoff_latency_seconds_bucket" in text
    assert "skynet_rollout_duration_seconds_count" in text
    assert 'skynet_queue_messages{env="local",kind="dead_letter",queue="skynet-local-local-api-maint.fifo"} 0.0' in text


def test_a_foreign_host_header_is_refused(env, tmp_path):
    from skynet_tasks.monitor.app import create_app
    from skynet_tasks.resources import resolve

    app = create_app(resolve(env.aws, "local"), env.aws, _celery(env), Auth(TOKEN), 60.0,
                     allowed_hosts=("127.0.0.1", "localhost"))
    client = app.test_client()
    assert client.get("/groups", headers={"Host": "127.0.0.1:8089"}).status_code == 200
    assert client.get("/groups", headers={"Host": "rebound.example:8089"}).status_code == 400


def _celery(env: Seeded):
    from clusterkit import sender_for
    return sender_for(env.environment).app


# ---- refusing ------------------------------------------------------------------------------
@pytest.mark.parametrize("headers", [
    pytest.param(same_origin_headers(), id="no credentials"),
    pytest.param(same_origin_headers(Authorization="Bearer not-the-token"), id="wrong token"),
    pytest.param(same_origin_headers(Authorization=basic("mallory", "guess")), id="wrong basic password"),
])
def test_unauthenticated_actions_are_refused_and_change_nothing(env, headers):
    before = state_of(env)
    client = env.app.test_client()

    answers = [client.post(f"/api/rollouts/{HALTED}/resume", headers=headers),
               client.post(f"/api/rollouts/{HALTED}/abort", headers=headers),
               client.post("/api/instances/api-2/drain", headers=headers),
               client.post(f"/api/groups/{GROUP}/rollback", headers=headers)]

    assert [a.status_code for a in answers] == [401] * 4
    assert "WWW-Authenticate" in answers[0].headers
    assert state_of(env) == before


@pytest.mark.parametrize("headers", [
    pytest.param({**BEARER, "Origin": "https://evil.example", "X-Skynet-Request": "1"}, id="foreign Origin"),
    pytest.param({**BEARER, "Sec-Fetch-Site": "cross-site", "X-Skynet-Request": "1"}, id="cross-site fetch"),
    pytest.param({"Authorization": basic("alice", TOKEN), "Origin": "http://localhost",
                  "Content-Type": "application/x-www-form-urlencoded"}, id="form post with cached basic auth"),
    pytest.param({"Authorization": basic("alice", TOKEN), "Sec-Fetch-Site": "same-site",
                  "X-Skynet-Request": "1"}, id="sibling subdomain"),
])
def test_cross_site_actions_are_refused_even_with_valid_credentials(env, headers):
    before = state_of(env)
    client = env.app.test_client()

    answers = [client.post(f"/api/rollouts/{HALTED}/resume", headers=headers, data="x=1"),
               client.post("/api/instances/api-2/drain", headers=headers)]

    assert [a.status_code for a in answers] == [403, 403]
    assert "cross-site" in answers[0].get_json()["error"]
    assert state_of(env) == before


def test_a_dashboard_without_a_token_refuses_every_action(env):
    from skynet_tasks.monitor.app import create_app
    from skynet_tasks.resources import resolve

    app = create_app(resolve(env.aws, "local"), env.aws, _celery(env), Auth(None), 60.0)
    before = state_of(env)

    answer = app.test_client().post(f"/api/rollouts/{HALTED}/resume", headers={**BEARER, **same_origin_headers()})

    assert answer.status_code == 401 and "--token-file" in answer.get_json()["error"]
    assert state_of(env) == before


# ---- acting ----------------------------------------------------------------------------------
def test_an_authenticated_same_origin_resume_is_sent_to_the_conductor_and_recorded(env):
    _, actions_before, queued_before, _ = state_of(env)
    client = env.app.test_client()
    started = time.time()

    answer = client.post(f"/api/rollouts/{HALTED}/resume", headers={**BEARER, **same_origin_headers()})

    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["action"] == "resume"
    _, actions_after, queued_after, _ = state_of(env)
    assert (actions_after, queued_after) == (actions_before + 1, queued_before + 1)
    newest = env.ledger.actions(GROUP)[0]
    assert newest["action"] == "resume" and newest["actor"] == "dashboard:token" and newest["at"] >= started


def test_basic_auth_records_its_user_name_and_drain_takes_the_instance_out(env):
    client = env.app.test_client()

    answer = client.post("/api/instances/api-2/drain",
                         headers={"Authorization": basic("alice", TOKEN), **same_origin_headers()})

    assert answer.status_code == 202, answer.get_json()
    assert state_of(env)[3] == "draining"
    newest = env.ledger.actions(GROUP)[0]
    assert (newest["action"], newest["actor"], newest["instance"]) == ("drain", "dashboard:alice", "api-2")
    assert "dashboard:alice · drain api-2" in client.get("/groups").get_data(as_text=True)


def test_an_action_the_operator_module_rejects_is_a_409_with_its_reason(env):
    client = env.app.test_client()
    headers = {**BEARER, **same_origin_headers()}

    rollback = client.post(f"/api/groups/{GROUP}/rollback", headers=headers)
    unknown = client.post("/api/rollouts/r-missing/pause", headers=headers)

    assert rollback.status_code == 409 and "no previous release" in rollback.get_json()["error"]
    assert unknown.status_code == 409 and "no rollout" in unknown.get_json()["error"]
    assert client.post(f"/api/rollouts/{HALTED}/explode", headers=headers).status_code == 404


# ---- configuration ---------------------------------------------------------------------------
def test_the_server_refuses_a_public_address_without_a_token_and_a_readable_token_file(tmp_path: Path):
    with pytest.raises(AuthConfigError, match="without --token-file"):
        check_bind("0.0.0.0", Auth())  # noqa: S104 - the refusal is what is tested
    check_bind("127.0.0.1", Auth())
    check_bind("::1", Auth())
    result = CliRunner().invoke(monitor, ["serve", "--host", "0.0.0.0", "--port", "1"])  # noqa: S104
    assert result.exit_code != 0 and "without --token-file" in result.output

    token = tmp_path / "token"
    write_token(token)
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert Auth.from_file(token).token == token.read_text().strip()
    os.chmod(token, 0o644)  # noqa: S103 - the refusal is what is tested
    with pytest.raises(AuthConfigError, match="readable by others"):
        Auth.from_file(token)
    result = CliRunner().invoke(monitor, ["serve", "--host", "0.0.0.0", "--token-file", str(token)])  # noqa: S104
    assert result.exit_code != 0 and "chmod 600" in result.output


def test_task_runs_are_bounded_per_instance_and_expire(env):
    runs = TaskRuns(env.aws.dynamodb, names.state_table("local"), keep=5, trim_every=3)

    def stored() -> list[dict]:
        return env.aws.dynamodb.query(TableName=names.state_table("local"), KeyConditionExpression="pk = :pk",
                                      ExpressionAttributeValues={":pk": {"S": "runs#api-9"}})["Items"]

    counts = []
    for number in range(12):
        assert runs.record("api-9", f"task-{number}", "success", 1000.0 + number, 0.5, None)
        counts.append(len(stored()))

    # Trimmed at the 1st, 4th, 7th and 10th record: never more than keep + trim_every - 1 runs.
    assert counts == [1, 2, 3, 4, 5, 6, 5, 6, 7, 5, 6, 7]
    assert [r.task for r in runs.recent("api-9", 5)] == ["task-11", "task-10", "task-9", "task-8", "task-7"]
    assert all(int(i["expires_at"]["N"]) > time.time() for i in stored())


def test_a_new_recorder_trims_at_its_first_record(env):
    """A worker restarted more often than it trims still bounds its instance's history."""
    for number in range(7):
        TaskRuns(env.aws.dynamodb, names.state_table("local"), keep=5, trim_every=10).record(
            "api-8", f"task-{number}", "success", 1000.0 + number, 0.5, None)

    assert [r.task for r in TaskRuns(env.aws.dynamodb, names.state_table("local")).recent("api-8", 50)] == \
        ["task-6", "task-5", "task-4", "task-3", "task-2"]


def test_the_timeline_measures_hand_offs_between_tickets_that_ran():
    summary = {"created_at": 0.0, "finished_at": None, "tickets": [
        {"number": 1, "state": "done", "taken_at": 1.0, "started_at": 2.0, "acknowledged_at": 2.1,
         "finished_at": 10.0},
        # The conductor starts ticket 2 in the step that ends ticket 1; its instance acknowledges 0.5 s later.
        {"number": 2, "state": "done", "taken_at": 1.5, "started_at": 10.0, "acknowledged_at": 10.5,
         "finished_at": 20.0},
        {"number": 3, "state": "updating", "taken_at": 3.0, "started_at": 20.0, "acknowledged_at": 23.0,
         "finished_at": None}]}

    shaped = ticket_timeline(summary, now=30.0)

    assert [t["handoff"] for t in shaped["tickets"]] == [None, 0.5, 3.0]
    assert [t["waited"] for t in shaped["tickets"]] == [1.0, 8.5, 17.0]
    assert [t["updated"] for t in shaped["tickets"]] == [8.0, 10.0, 10.0]
    assert shaped["duration"] == 30.0 and shaped["failed_ticket"] is None
