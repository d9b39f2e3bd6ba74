"""No maintenance event is lost: a step that keeps failing ends in the group's dead-letter queue, where
``skynet status``, the dashboard and the metrics show it and ``skynet dlq redrive`` sends it back.

A real conductor worker (``skynet worker --role conductor``, Celery on kombu's SQS transport) consumes
the group's maintenance queue on moto's server, so what is acknowledged, rejected and redelivered is
what a worker does. The test's queue has a visibility timeout of one second (the stack's is 20 s),
so five receives take seconds rather than minutes. The operator's cases that need no worker (a redrive
whose send fails, a group without a dead-letter queue, queues that cannot be read) are in
``test_deadletters_cli.py``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import kombu.pools
import pytest
from deadletterkit import ENV, MEMBER, VISIBILITY, Env, cli, env_on_moto  # noqa: F401 - the fixture env
from monitorkit import TOKEN

from skynet_tasks.bootstrap import ensure_table
from skynet_tasks.conductor import Rollout, RolloutReady
from skynet_tasks.deadletters import DeadLetters
from skynet_tasks.events import to_message
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import MAINTENANCE_TASK
from skynet_tasks.monitor.app import create_app as create_dashboard
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.queues import MAX_RECEIVES
from skynet_tasks.states import RolloutKind

pytestmark = pytest.mark.timeout(120)


def wait_for(what: str, check: Callable[[], Any], env: Env, timeout: float = 40) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f}s; conductor log:\n{env.log()}")


def ready(env: Env, rollout_id: str) -> None:
    """Post the rollout-ready event of ``rollout_id`` (canary: the member) as a builder does."""
    body, dedup = to_message(RolloutReady(Rollout(id=rollout_id, group=env.group, release="f" * 40,
                                                  canary=MEMBER, update_timeout=60)))
    env.messenger().maintenance(env.group, body, dedup)


def canary_updating(env: Env, rollout_id: str) -> bool:
    rollout = env.ledger.load_group(env.group).rollout(rollout_id)
    ticket = rollout.ticket_of(MEMBER) if rollout is not None else None
    return ticket is not None and str(ticket.state) == "updating"


def test_a_step_that_succeeds_is_acknowledged_once(env):
    # Given a conductor and a rollout waiting for its first step
    env.ledger.create_rollout("r-ok", env.group, "f" * 40, RolloutKind.CODE, {})
    env.start_conductor()

    # When its rollout-ready event is decided
    ready(env, "r-ok")
    wait_for("the canary's ticket updating", lambda: canary_updating(env, "r-ok"), env)

    # Then the message is gone and never comes back: one run, well past several visibility timeouts
    time.sleep(4 * VISIBILITY + 2)
    assert len(env.maintenance_runs()) == 1
    assert env.depth(env.queue) == 0
    assert env.depth(env.dead_letter_queue) == 0


def test_an_event_that_keeps_failing_is_dead_lettered_shown_everywhere_and_decided_after_a_redrive(env):
    # Given a conductor whose every step fails (the state table is gone: an outage, or a bug)
    env.aws.dynamodb.delete_table(TableName=env.resources.state_table)
    env.start_conductor()

    # When a rollout-ready event reaches the group's maintenance queue
    ready(env, "r-dead")

    # Then it is received again after each failure, and past the limit SQS moves it to the dead-letter queue
    wait_for("the event in the dead-letter queue", lambda: env.depth(env.dead_letter_queue) == 1, env)
    assert env.depth(env.queue) == 0

    # Once the table is back, it shows in `skynet dlq show`, without being consumed
    ensure_table(env.aws, env.resources.state_table, "pk", "sk", "expires_at")
    shown = json.loads(cli("dlq", "show", env.group, "--json"))
    assert [(s["kind"], s["rollout_id"], s["message_group"]) for s in shown] == [
        ("rollout_ready", "r-dead", env.group)]
    assert shown[0]["receive_count"] > MAX_RECEIVES  # received past the limit: never acknowledged early
    assert time.time() - 60 < shown[0]["sent_at"] <= time.time()
    assert env.depth(env.dead_letter_queue) == 1

    # ... in `skynet status`
    assert f"ALARM: group {env.group} has 1 dead letter in {env.dead_letter_queue}" in cli("status")
    status = json.loads(cli("status", "--json"))
    assert {"group": env.group, "queue": env.dead_letter_queue, "messages": 1} in status["dead_letters"]

    # ... on the dashboard's pages, in its API and in its metrics
    dashboard = create_dashboard(env.resources, env.aws, env.messenger().app, Auth(TOKEN), max_age=60.0)
    client = dashboard.test_client()
    page = client.get("/groups").get_data(as_text=True)
    assert 'class="alarm"' in page and f"skynet dlq show {env.group}" in page
    assert 'class="alarm"' in client.get("/queues?partial=1").get_data(as_text=True)  # the live refresh too
    api = client.get("/api/status").get_json()
    assert {"group": env.group, "queue": env.dead_letter_queue, "messages": 1} in api["dead_letters"]
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'skynet_dead_letters{{env="local",group="{env.group}",queue="{env.dead_letter_queue}"}} 1.0' in metrics

    # When the operator redrives it, the rollout now existing
    env.ledger.create_rollout("r-dead", env.group, "f" * 40, RolloutKind.CODE, {})
    redriven = json.loads(cli("dlq", "redrive", env.group, "--json"))

    # Then it left the dead-letter queue, and the conductor decided it: the canary's number came up
    assert [r["rollout_id"] for r in redriven["redriven"]] == ["r-dead"] and redriven["failed"] == []
    wait_for("the canary's ticket updating", lambda: canary_updating(env, "r-dead"), env)
    assert env.depth(env.dead_letter_queue) == 0
    # (the dashboard reads queue depths at most every 30 s: its banner clears at the next read, 30 s on)
    cache = dashboard.extensions["skynet_monitor"].queue_cache
    cache.clock = lambda: time.monotonic() + cache.ttl
    assert 'class="alarm"' not in client.get("/groups").get_data(as_text=True)
    assert "ALARM" not in cli("status")


def test_a_step_killed_at_its_hard_time_limit_is_not_acknowledged_and_comes_back(tmp_path):
    # Given a DynamoDB whose transactions take 3 s, and a step allowed 1 s
    saved = dict(os.environ)
    server = MotoServer.start(faults="conflicts=3000")
    env = Env(server, "local-api", tmp_path)
    try:
        env.ledger.create_rollout("r-slow", env.group, "f" * 40, RolloutKind.CODE, {})
        env.start_conductor()
        body, dedup = to_message(RolloutReady(Rollout(id="r-slow", group=env.group, release="f" * 40,
                                                      canary=MEMBER, update_timeout=60)))
        env.messenger().app.send_task(MAINTENANCE_TASK, kwargs={"group": env.group, "event": body},
                                      queue=env.queue, MessageGroupId=env.group, MessageDeduplicationId=dedup,
                                      time_limit=1, soft_time_limit=1)

        # When its step is killed at the limit, Then its message was not acknowledged: it is received again
        # (and decided then: the killed step's transaction itself may have landed meanwhile, as on AWS,
        # which makes the second step find it done; a step that keeps failing is dead-lettered, above)
        def came_back() -> bool:
            log = (env.tmp / "conductor.log").read_text(errors="replace")
            killed = log.find("Hard time limit (1s) exceeded")
            return killed >= 0 and "Task skynet.maintenance[" in log[killed:] and " received" in log[killed:]

        wait_for("the killed step's message to come back", came_back, env, timeout=60)
    finally:
        env.stop()
        kombu.pools.reset()
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


def test_a_malformed_event_is_dead_lettered_not_retried_for_ever(env):
    # Given a conductor, and an event no Skynet version knows (as a newer version's would look)
    env.start_conductor()

    # When it reaches the group's maintenance queue
    env.messenger().maintenance(env.group, {"type": "from-the-future", "rollout_id": "r-new"}, "future-1")

    # Then every member that receives it refuses it, and after the limit it waits in the dead-letter queue
    wait_for("the event in the dead-letter queue", lambda: env.depth(env.dead_letter_queue) == 1, env)
    assert env.depth(env.queue) == 0
    letters = DeadLetters(env.aws.sqs, ENV).show(env.group)
    assert [(d.kind, d.rollout_id, d.task) for d in letters] == [("from-the-future", "r-new", MAINTENANCE_TASK)]
    assert "BadEvent" in env.log()
