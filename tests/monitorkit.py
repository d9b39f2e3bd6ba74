"""Helpers for the dashboard's tests: a moto server with one seeded env, the dashboard app on it, and
what an action would change there (``state_of``)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from clusterkit import sender_for
from flask import Flask

from skynet_tasks import names
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.conductor import Decision, Group, Rollout, Ticket
from skynet_tasks.ledger import Ledger, Release
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.monitor.app import create_app
from skynet_tasks.monitor.auth import Auth
from skynet_tasks.queues import Queues
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.states import ReleaseState, RolloutKind, RolloutState, TicketState
from skynet_tasks.taskruns import TaskRuns

TOKEN = "test-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
GROUP = "local-api"
HALTED = "r20261125-050000-abcdef"
RUNNING_SHA = "a" * 40
BAD_SHA = "b" * 40


@dataclass
class Seeded:
    moto: MotoServer
    aws: Aws
    environment: dict[str, str]
    ledger: Ledger
    registry: Registry
    app: Flask

    def maintenance_depth(self) -> int:
        depth = Queues(self.aws.sqs).depth(names.maintenance_queue("local", GROUP))
        return depth["visible"] + depth["in_flight"] + depth["delayed"]


def state_of(env: Seeded) -> tuple[str, int, int, str]:
    """What an action would change: the rollout's state, the audit trail, queued events, api-2's health."""
    rollout = env.ledger.rollout_item(HALTED)
    assert rollout is not None
    found = env.registry.find("local", "api-2")
    assert found is not None
    return rollout["state"], len(env.ledger.actions(GROUP)), env.maintenance_depth(), found[1].health


def seed(aws: Aws) -> None:
    """One group with two instances, a built release, and a rollout halted on its second ticket."""
    ledger = Ledger(aws.dynamodb, names.state_table("local"))
    registry = Registry(aws.dynamodb, names.endpoints_table("local"))
    now = time.time()
    for number in (1, 2):
        registry.register("local", "api", Endpoint(f"api-{number}", GROUP, "127.0.0.1", 9000 + number, RUNNING_SHA,
                                                  "healthy", now, last_task="update", last_outcome="ok"))
    ledger.ensure_group(GROUP, "/srv/sample-app.git", "main")
    assert ledger.claim_build(Release(group=GROUP, sha=BAD_SHA, state=ReleaseState.BUILDING, repo="sample-app",
                                      branch="main", builder="api-1", started_at=now - 60), lease=60)
    aws.s3.put_object(Bucket=resolve(aws, "local").repo_bucket, Key="logs/builds/bad.log", Body=b"build ok\n")
    ledger.finish_build(GROUP, BAD_SHA, "api-1", ReleaseState.BUILT,
                        {"log_key": "logs/builds/bad.log", "sha256": "c" * 64, "size": 1234,
                         "author": "Test Author", "message": "Bad release"})
    assert ledger.create_rollout(HALTED, GROUP, BAD_SHA, RolloutKind.CODE, {"source": "test"})
    tickets = (
        Ticket(1, "api-1", TicketState.DONE, now - 50, now - 49, now - 40),
        Ticket(2, "api-2", TicketState.FAILED, now - 45, now - 40, now - 30, error="health check failed"),
    )
    rollout = Rollout(HALTED, GROUP, BAD_SHA, state=RolloutState.HALTED, created_at=now - 55, canary="api-1",
                      published=True, expected=("api-1", "api-2"), tickets=tickets, reason="ticket 2 failed")
    before = Group(GROUP)
    ledger.write_decision(before, Decision(Group(GROUP, line=(rollout,)), touched=(rollout,), notes=("seeded",)))
    aws.s3.put_object(Bucket=resolve(aws, "local").repo_bucket, Key="logs/updates/halted-2.log",
                      Body=b"running check.py\nhealth check failed on purpose\nrolled back\n")
    # api-2 acknowledged its update a second after the conductor started its ticket.
    ledger.annotate_ticket(HALTED, 2, {"log_key": "logs/updates/halted-2.log", "acknowledged_at": now - 39})
    TaskRuns(aws.dynamodb, names.state_table("local")).record("api-2", "skynet.update", "failure", now - 39, 9.0,
                                                              "health check failed")


@contextmanager
def seeded_env() -> Iterator[Seeded]:
    moto = MotoServer.start()
    try:
        environment = {**moto.environment(), "SKYNET_ENV": "local"}
        aws = aws_for(environment)
        bootstrap_env(aws, resolve(aws, "local"), [GROUP])
        seed(aws)
        messenger = sender_for(environment)
        app = create_app(resolve(aws, "local"), aws, messenger.app, Auth(TOKEN), max_age=60.0)
        yield Seeded(moto, aws, environment, Ledger(aws.dynamodb, names.state_table("local")),
                     Registry(aws.dynamodb, names.endpoints_table("local")), app)
    finally:
        moto.stop()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def same_origin_headers(**extra: Any) -> dict[str, str]:
    return {"X-Skynet-Request": "1", "Origin": "http://localhost", "Sec-Fetch-Site": "same-origin",
            **{k.replace("_", "-"): v for k, v in extra.items()}}
