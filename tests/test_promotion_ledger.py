"""Manual promotion and windows on their way through the ledger and the dashboard: the rollout's record keeps its
policy, promote is refused (nothing recorded or sent) unless the rollout waits for one, the dashboard's promote
button, ``--now`` on the record. The ledger is a moto server, as in production code paths (the dashboard's seeded
env: one moto server for the module)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from monitorkit import GROUP, HALTED, TOKEN, same_origin_headers, seeded_env

from skynet_tasks.conductor import Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.deploys import request_build
from skynet_tasks.operator import OperatorError, rollout_action
from skynet_tasks.policy_windows import parse_windows
from skynet_tasks.states import RolloutKind
from skynet_tasks.step import decide_and_write_until_settled

pytestmark = pytest.mark.timeout(60)

MEMBERS = ("a", "b", "c")
HEADERS = {"Authorization": f"Bearer {TOKEN}", **same_origin_headers()}
WINDOWS = parse_windows([{"days": "mon-fri", "hours": "09:00-17:00", "tz": "Europe/Paris"}])


@pytest.fixture(scope="module")
def env():
    with seeded_env() as seeded:
        yield seeded


@pytest.fixture(scope="module")
def ledger(env):
    return env.ledger


class _Messages:
    """Stands in for the queues: only what is sent is under test here."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []

    def maintenance(self, group: str, body: dict[str, Any], dedup: str) -> None:
        self.sent.append((group, body, dedup))

    def build(self, group: str, request: dict[str, Any]) -> None:
        self.sent.append((group, request, "build"))


def test_the_dashboard_has_a_promote_button_and_refuses_a_promote_that_changes_nothing(env):
    client = env.app.test_client()
    assert 'id="action-promote"' in client.get(f"/rollouts/{HALTED}").get_data(as_text=True)
    answer = client.post(f"/api/rollouts/{HALTED}/promote", headers=HEADERS)
    assert answer.status_code == 409 and "published already: nothing to promote" in answer.get_json()["error"]


def test_a_manual_rollout_keeps_its_policy_and_promote_is_refused_until_it_waits(env, ledger):
    # Given a manual rollout with a timeout, windows and --now, whose canary is updating
    messages = _Messages()
    ledger.create_rollout("r-manual", GROUP, "s1", RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id="r-manual", group=GROUP, release="s1", canary="a", update_timeout=60,
                                 promotion="manual", promote_timeout=600.0, windows=WINDOWS, ignore_windows=True))
    for event in (ready, TicketTaken("r-manual", "b")):
        decide_and_write_until_settled(ledger, GROUP, event, MEMBERS, now=time.time())
    stored = ledger.load_rollout("r-manual")
    assert stored is not None and (stored.promotion, stored.promote_timeout, stored.windows, stored.ignore_windows) \
        == ("manual", 600.0, WINDOWS, True)

    # When an operator promotes it before the canary succeeded, it is refused: nothing recorded or sent
    with pytest.raises(OperatorError, match="not waiting for promotion: its canary has not succeeded"):
        rollout_action(ledger, messages, "r-manual", "promote", "cli:test")  # type: ignore[arg-type]
    assert messages.sent == [] and not [a for a in ledger.actions(GROUP) if a.get("rollout_id") == "r-manual"]

    # Then once the canary succeeded it waits, as its record says, and the promote goes to the conductor, audited
    decide_and_write_until_settled(ledger, GROUP, UpdateReported("r-manual", 1, "a", ok=True), MEMBERS)
    item = ledger.rollout_item("r-manual") or {}
    assert item["state"] == "running" and item["reason"].startswith("waiting for promotion") \
        and item["promotable_at"] and not item["published"]
    groups = env.app.test_client().get("/groups").get_data(as_text=True)
    assert 'data-action="/api/rollouts/r-manual/promote"' in groups and "waiting for promotion" in groups
    answer = env.app.test_client().post("/api/rollouts/r-manual/promote", headers=HEADERS)
    assert answer.status_code == 202, answer.get_json()
    trail = [(a["action"], a["actor"]) for a in ledger.actions(GROUP) if a.get("rollout_id") == "r-manual"]
    assert trail == [("promote", "dashboard:token")]


def test_promote_of_a_rollout_whose_canary_publishes_it_is_refused(ledger):
    group = "local-auto"
    ledger.ensure_group(group, "/srv/repo.git", "main")
    ledger.create_rollout("r-auto", group, "s2", RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id="r-auto", group=group, release="s2", canary="a", update_timeout=60))
    decide_and_write_until_settled(ledger, group, ready, MEMBERS, now=time.time())
    with pytest.raises(OperatorError, match=r"not waiting for promotion \(its canary publishes it: canary: auto\)"):
        rollout_action(ledger, _Messages(), "r-auto", "promote", "cli:test")  # type: ignore[arg-type]


def test_a_deploy_now_is_on_the_rollouts_record(ledger):
    now = request_build(ledger, _Messages(), GROUP, "file:///nowhere", "main", "d" * 40, "cli",  # type: ignore[arg-type]
                        ignore_windows=True)
    assert (ledger.rollout_item(now.rollout_id) or {})["ignore_windows"] is True
    plain = request_build(ledger, _Messages(), GROUP, "file:///nowhere", "main", "c" * 40, "cli")  # type: ignore[arg-type]
    assert "ignore_windows" not in (ledger.rollout_item(plain.rollout_id) or {})
