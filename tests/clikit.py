"""Helpers for the CLI's tests: a moto server with one env whose rollouts were written through the ledger.

The seeded group ``local-api`` has three registered instances and four rollouts, oldest first:
``DONE`` (completed, three tickets, logs), ``HALTED`` (halted on ticket 2), ``RUNNING`` (ticket 1
done, ticket 2 updating, ticket 3 waiting) and ``BUILDING`` (its release being built on api-2).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import kombu.pools
from click.testing import CliRunner, Result

from skynet_tasks import names
from skynet_tasks.aws import Aws, aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.cli import main
from skynet_tasks.conductor import Decision, Group, Rollout, Ticket
from skynet_tasks.ledger import Ledger, Release
from skynet_tasks.ledger.table import ROLLOUT_SK, rollout_pk
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.states import ReleaseState, RolloutKind, RolloutState, TicketState

GROUP = "local-api"
INSTANCES = ("api-1", "api-2", "api-3")
DONE = "r20261201-100000-aaaaaa"
HALTED = "r20261201-110000-bbbbbb"
RUNNING = "r20261201-120000-cccccc"
BUILDING = "r20261201-130000-dddddd"
GOOD_SHA = "a" * 40
BAD_SHA = "b" * 40
NEW_SHA = "c" * 40
NEXT_SHA = "d" * 40


@dataclass
class Env:
    moto: MotoServer
    aws: Aws
    environment: dict[str, Any]
    ledger: Ledger

    def skynet(self, *args: str, **extra_env: str | None) -> Result:
        """Run ``skynet ARGS`` in this process against the server, as a shell with env.sh sourced would."""
        return CliRunner().invoke(main, list(args), env={**self.environment, **extra_env}, prog_name="skynet")

    def rollout(self, rollout_id: str) -> Rollout:
        found = self.ledger.load_rollout(rollout_id)
        assert found is not None
        return found

    def decide(self, *rollouts: Rollout) -> None:
        """Write ``rollouts`` as a conductor's decision would (the group's version moves on)."""
        before = self.ledger.load_group(GROUP)
        self.ledger.write_decision(before, Decision(replace(before, line=before.line), touched=rollouts))

    def delete_rollout(self, rollout_id: str) -> None:
        """Remove every item of the rollout (what an operator cleaning the table by hand would do)."""
        table = names.state_table("local")
        items = self.aws.dynamodb.query(TableName=table, KeyConditionExpression="pk = :pk",
                                        ExpressionAttributeValues={":pk": {"S": rollout_pk(rollout_id)}})["Items"]
        for item in items:
            self.aws.dynamodb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
        assert self.ledger.item(rollout_pk(rollout_id), ROLLOUT_SK) is None


def _built(ledger: Ledger, sha: str, started: float, log_key: str | None = None) -> None:
    assert ledger.claim_build(Release(group=GROUP, sha=sha, state=ReleaseState.BUILDING, repo="/srv/app.git",
                                      branch="main", builder="api-1", started_at=started), lease=60)
    ledger.finish_build(GROUP, sha, "api-1", ReleaseState.BUILT, {"log_key": log_key, "sha256": "e" * 64,
                                                                   "size": 10})


def seed(aws: Aws) -> None:
    """The group, its instances and its four rollouts (module docstring)."""
    ledger = Ledger(aws.dynamodb, names.state_table("local"))
    registry = Registry(aws.dynamodb, names.endpoints_table("local"))
    bucket = resolve(aws, "local").repo_bucket
    now = time.time()
    for number, instance in enumerate(INSTANCES, 1):
        registry.register("local", "api", Endpoint(instance, GROUP, "127.0.0.1", 9000 + number, GOOD_SHA,
                                                   "healthy", now))
    ledger.ensure_group(GROUP, "/srv/app.git", "main")
    _built(ledger, GOOD_SHA, now - 400, "logs/builds/good.log")
    _built(ledger, BAD_SHA, now - 300)
    aws.s3.put_object(Bucket=bucket, Key="logs/builds/good.log", Body=b"compiling... ok\n")
    for rollout_id, sha in ((DONE, GOOD_SHA), (HALTED, BAD_SHA), (RUNNING, NEW_SHA), (BUILDING, NEXT_SHA)):
        assert ledger.create_rollout(rollout_id, GROUP, sha, RolloutKind.CODE, {"source": "test"})
        time.sleep(0.01)  # the group's index orders rollouts by creation time
    assert ledger.claim_build(Release(group=GROUP, sha=NEXT_SHA, state=ReleaseState.BUILDING, repo="/srv/app.git",
                                      branch="main", builder="api-2", started_at=now - 5), lease=60)
    done = Rollout(DONE, GROUP, GOOD_SHA, state=RolloutState.COMPLETED, created_at=now - 350, canary="api-1",
                   published=True, expected=INSTANCES, finished_at=now - 320, tickets=tuple(
                       Ticket(n, i, TicketState.DONE, now - 345, now - 345 + 8 * n, now - 340 + 8 * n)
                       for n, i in enumerate(INSTANCES, 1)))
    halted = Rollout(HALTED, GROUP, BAD_SHA, state=RolloutState.HALTED, created_at=now - 300, canary="api-1",
                     published=True, expected=INSTANCES, reason="ticket 2 failed: health check failed", tickets=(
                         Ticket(1, "api-1", TicketState.DONE, now - 295, now - 290, now - 285),
                         Ticket(2, "api-2", TicketState.FAILED, now - 295, now - 284, now - 280,
                                error="health check failed"),
                         Ticket(3, "api-3", TicketState.CANCELLED, now - 295)))
    running = Rollout(RUNNING, GROUP, NEW_SHA, state=RolloutState.RUNNING, created_at=now - 30, canary="api-1",
                      published=True, expected=INSTANCES, tickets=(
                          Ticket(1, "api-1", TicketState.DONE, now - 25, now - 25, now - 15),
                          Ticket(2, "api-2", TicketState.UPDATING, now - 25, now - 14, acknowledged_at=now - 2.1),
                          Ticket(3, "api-3", TicketState.WAITING, now - 25)))
    ledger.write_decision(Group(GROUP), Decision(Group(GROUP, line=(running,)), touched=(done, halted, running)))
    for rollout_id, number in ((DONE, 1), (DONE, 2), (DONE, 3), (HALTED, 2), (RUNNING, 1)):
        log_key = f"logs/updates/{rollout_id}/{number:06d}.log"
        aws.s3.put_object(Bucket=bucket, Key=log_key, Body=f"update {rollout_id} ticket {number}\n".encode())
        ledger.annotate_ticket(rollout_id, number, {"log_key": log_key})
    ledger.annotate_rollout(DONE, {"build_log_key": "logs/builds/good.log", "builder": "api-1"})
    ledger.annotate_ticket(HALTED, 2, {"acknowledged_at": now - 283})


def finish_ticket(env: Env, rollout_id: str, number: int, state: TicketState, rollout_state: RolloutState) -> None:
    """Write ticket ``number``'s end and the rollout's new state, as the conductor decides on a report."""
    rollout = env.rollout(rollout_id)
    now = time.time()
    tickets = tuple(replace(t, state=state, finished_at=now) if t.number == number else t for t in rollout.tickets)
    env.decide(replace(rollout, tickets=tickets, state=rollout_state,
                       finished_at=now if rollout_state is RolloutState.COMPLETED else None))


@contextmanager
def seeded_env() -> Iterator[Env]:
    """A moto server with the seeded env; the CLI run in this process reaches it through the environment."""
    moto = MotoServer.start()
    try:
        environment: dict[str, Any] = {**moto.environment(), "SKYNET_ENV": "local", "AWS_MAX_ATTEMPTS": "2"}
        aws = aws_for(environment)
        bootstrap_env(aws, resolve(aws, "local"), [GROUP])
        seed(aws)
        kombu.pools.reset()  # another module's server may still have a pooled connection
        yield Env(moto, aws, environment, Ledger(aws.dynamodb, names.state_table("local")))
    finally:
        kombu.pools.reset()
        moto.stop()


