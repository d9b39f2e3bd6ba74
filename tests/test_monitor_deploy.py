"""Deploying from the dashboard, against moto's server with seeded state: the groups page's form, who may
deploy, bad requests refused naming the key and the rule, and the rollout a deploy records.
"""

from __future__ import annotations

import pytest
from monitorkit import BEARER, GROUP, TOKEN, Seeded, same_origin_headers, seeded_env, state_of

from skynet_tasks.monitor.auth import Auth

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def env():
    with seeded_env() as seeded:
        yield seeded


def deploy_state(env: Seeded) -> tuple[tuple[str, int, int, str], list[str]]:
    """What a deploy would change: ``state_of`` (audit trail, queued messages) and the group's rollouts."""
    return state_of(env), env.ledger.recent_rollouts(GROUP, 50)


def test_the_groups_page_has_a_deploy_form_posting_to_the_api(env):
    page = env.app.test_client().get("/groups").get_data(as_text=True)

    assert f'data-deploy="/api/groups/{GROUP}/deploy"' in page
    for field in ("ref", "max_parallel", "min_healthy_time", "progress_deadline", "on_failure", "canary",
                  "promote_timeout", "windows", "now"):
        assert f'name="{field}"' in page, field


def test_a_deploy_is_refused_to_a_reader_and_without_credentials_and_changes_nothing(env):
    from celery import Celery

    from skynet_tasks.monitor.app import create_app
    from skynet_tasks.resources import resolve

    reader = "read-only-token-0123456789"
    # A Celery app of its own that never sends (a second sender would reset the pools the seeded dashboard's uses).
    app = create_app(resolve(env.aws, "local"), env.aws, Celery("refused-before-sending"),
                     Auth(TOKEN, read_token=reader, protect_reads=True), 60.0)
    before = deploy_state(env)

    as_reader = app.test_client().post(f"/api/groups/{GROUP}/deploy", json={"ref": "e" * 40},
                                       headers={"Authorization": f"Bearer {reader}", **same_origin_headers()})
    anonymous = env.app.test_client().post(f"/api/groups/{GROUP}/deploy", json={"ref": "e" * 40},
                                           headers=same_origin_headers())

    assert (as_reader.status_code, as_reader.get_json()["error"]) == (403, "a read-only token may not act")
    assert anonymous.status_code == 401
    assert deploy_state(env) == before


@pytest.mark.parametrize(("body", "message"), [
    ({"ref": "e" * 40, "canary": "later"}, "canary: 'later' is not a canary mode: expected auto or manual"),
    ({"ref": "e" * 40, "windows": "mon-fri"}, "windows[0]: 'mon-fri' is not a window: expected days, hours"),
    ({"ref": "e" * 40, "windows": "sat 10:00-12:00\nmon 09:00-17:00 Mars/Olympus"},
     "windows[1].tz: unknown time zone 'Mars/Olympus'"),
    ({"ref": "e" * 40, "max_parallel": "1,0"}, "max_parallel[1]: '0' is not a batch size"),
    ({"ref": "e" * 40, "promote_timeout": "90d"}, "promote_timeout: '90d' is out of range"),
    ({"ref": "e" * 40, "ignore_windows": True}, "unknown key(s) ignore_windows (known: ref, max_parallel"),
    ({"ref": "e" * 40, "now": "yes"}, "now: expected true or false"),
    ({"canary": "manual"}, "ref: expected a branch, tag or commit sha"),
    (["e" * 40], "expected a JSON object with the key(s) ref, max_parallel"),
], ids=lambda value: "" if isinstance(value, dict | list) else value.split(":")[0])
def test_a_bad_deploy_is_a_400_naming_the_key_and_the_rule_and_nothing_is_recorded_or_sent(env, body, message):
    before = deploy_state(env)

    answer = env.app.test_client().post(f"/api/groups/{GROUP}/deploy", json=body,
                                        headers={**BEARER, **same_origin_headers()})

    assert answer.status_code == 400 and answer.get_json()["error"].startswith(message), answer.get_json()
    assert deploy_state(env) == before


def test_a_ref_the_groups_repository_cannot_resolve_is_a_409_and_nothing_is_recorded(env):
    before = deploy_state(env)

    answer = env.app.test_client().post(f"/api/groups/{GROUP}/deploy", json={"ref": "main"},
                                        headers={**BEARER, **same_origin_headers()})

    assert answer.status_code == 409 and "cannot list /srv/sample-app.git" in answer.get_json()["error"]
    assert deploy_state(env) == before


def test_a_deploy_from_the_dashboard_records_the_rollout_with_its_overrides_and_its_actor(env):
    (_, actions, queued, _), _ = deploy_state(env)

    answer = env.app.test_client().post(f"/api/groups/{GROUP}/deploy", headers={**BEARER, **same_origin_headers()},
                                        json={"ref": "e" * 40, "canary": "manual", "promote_timeout": "1h",
                                              "max_parallel": "1,50%", "min_healthy_time": "", "now": True,
                                              "windows": "mon-fri 09:00-17:00 Europe/Paris\nsat 10:00-12:00\n"})

    assert answer.status_code == 202, answer.get_json()
    rollout_id = answer.get_json()["rollout_id"]
    record = env.ledger.rollout_item(rollout_id) or {}
    assert (record["state"], record["release"], record["source"]) == ("building", "e" * 40,
                                                                      "dashboard by dashboard:token")
    assert (record["promotion"], record["promote_timeout"], record["max_parallel"], record["ignore_windows"]) == (
        "manual", 3600, ["1", "50%"], True)
    assert record["windows"] == ["mon,tue,wed,thu,fri 09:00:00-17:00:00 Europe/Paris", "sat 10:00:00-12:00:00 UTC"]
    assert "min_healthy_time" not in record  # left empty: skynet.yml's
    newest = env.ledger.actions(GROUP)[0]
    assert (newest["action"], newest["actor"], newest["rollout_id"]) == ("deploy --now", "dashboard:token", rollout_id)
    assert newest["overrides"]["canary"] == "manual"
    assert (len(env.ledger.actions(GROUP)), env.maintenance_depth()) == (actions + 1, queued + 1)
