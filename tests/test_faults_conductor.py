"""The conductor on a local AWS that misbehaves as AWS does: transactions that conflict, requests throttled,
messages delivered twice, eventually consistent reads that are stale.

The steps run as the maintenance task runs them (``skynet_tasks.tasks.maintenance.handle_maintenance``) against
moto's server over HTTP, with the boto3 clients Skynet builds (``skynet_tasks.aws``); only
the messages a step sends are recorded instead of sent (and, for duplicates, the conductor's messages
come through one of the server's FIFO queues).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.conductor import Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.events import to_message
from skynet_tasks.ledger import Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import UPDATE_TASK
from skynet_tasks.registry import Endpoint, Registry
from skynet_tasks.resources import resolve
from skynet_tasks.states import RolloutKind
from skynet_tasks.tasks.maintenance import handle_maintenance

pytestmark = pytest.mark.timeout(120)

GROUP = "local-api"
MEMBERS = ("a", "b", "c")


@dataclass
class SentMessages:
    """Stands in for the Messenger: what the conductor told each instance."""

    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def to_instance(self, instance: str, task: str, payload: dict[str, Any], expires: float | None = None,
                    countdown: float | None = None) -> None:
        self.sent.append((instance, task, payload))

    def to_members(self, group: str, task: str, payload: dict[str, Any]) -> None:
        self.sent.append((f"group {group}", task, payload))


def conductor_on(server: MotoServer) -> SimpleNamespace:
    """What a conductor step uses, on ``server``, with the retry policy every Skynet client has."""
    aws = aws_for(server.environment())
    resources = resolve(aws, "local")
    bootstrap_env(aws, resources, [GROUP])
    registry = Registry(aws.dynamodb, resources.endpoints_table)
    for member in MEMBERS:
        registry.register("local", "api", Endpoint(member, GROUP, "10.0.0.1", 8080, "old", "healthy", time.time()))
    return SimpleNamespace(ledger=Ledger(aws.dynamodb, resources.state_table), registry=registry,
                           settings=SimpleNamespace(env="local", group=GROUP, heartbeat_max_age=600.0),
                           messenger=SentMessages())


@contextmanager
def conductor_with_faults(faults: str) -> Iterator[tuple[MotoServer, SimpleNamespace]]:
    """A moto server started with ``faults``, and a conductor on it; the server stops after."""
    server = MotoServer.start(faults=faults)
    try:
        yield server, conductor_on(server)
    finally:
        server.stop()


def step(ctx: SimpleNamespace, event: object) -> None:
    handle_maintenance(ctx, GROUP, to_message(event)[0])  # type: ignore[arg-type]


def start_rollout(ctx: SimpleNamespace, rollout_id: str) -> None:
    ctx.ledger.create_rollout(rollout_id, GROUP, f"sha-{rollout_id}", RolloutKind.CODE, {})
    step(ctx, RolloutReady(Rollout(id=rollout_id, group=GROUP, release=f"sha-{rollout_id}", canary="a",
                                   update_timeout=60)))


def test_two_steps_of_one_group_at_the_same_moment_are_both_decided_when_their_transactions_conflict():
    # Given DynamoDB's behaviour: the later of two overlapping transactions is cancelled (TransactionConflict)
    with conductor_with_faults("conflicts=300") as (server, ctx):
        start_rollout(ctx, "r-conflict")
        before = server.fault_counts().get("TransactionConflict", 0)

        # When b and c take their tickets at the same moment (two conductor workers, two message groups)
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def take(member: str) -> None:
            start.wait()
            try:
                step(ctx, TicketTaken("r-conflict", member))
            except BaseException as error:  # noqa: BLE001 - surfaced by the assertion below
                errors.append(error)

        takers = [threading.Thread(target=take, args=(member,)) for member in ("b", "c")]
        for taker in takers:
            taker.start()
        for taker in takers:
            taker.join(60)

        # Then the conflict happened, and neither step was lost: the loser decided again on a fresh read
        assert errors == []
        assert server.fault_counts()["TransactionConflict"] > before
        rollout = ctx.ledger.load_group(GROUP).rollout("r-conflict")
        assert sorted(t.instance for t in rollout.tickets) == ["a", "b", "c"]
        assert [t.number for t in rollout.tickets] == [1, 2, 3]  # one number each, none given twice


def test_a_rollout_completes_while_a_third_of_the_requests_are_throttled():
    # Given an AWS that throttles 30% of DynamoDB, SQS and S3 requests (at 10%, the two dozen DynamoDB
    # requests of a rollout this size met no throttle at all about once in fifty runs)
    with conductor_with_faults("throttle=0.3") as (server, ctx):

        # When a whole rollout goes through the conductor: canary, tickets, reports, completion
        start_rollout(ctx, "r-throttle")
        step(ctx, TicketTaken("r-throttle", "b"))
        step(ctx, TicketTaken("r-throttle", "c"))
        for number, member in enumerate(MEMBERS, start=1):
            step(ctx, UpdateReported("r-throttle", number, member, ok=True))

        # Then it completed, each member updated once, and requests really were throttled on the way
        assert ctx.ledger.rollout_item("r-throttle")["state"] == "completed"
        updated = [instance for instance, task, _ in ctx.messenger.sent if task == UPDATE_TASK]
        assert updated == ["a", "b", "c"]
        assert server.fault_counts().get("throttled:dynamodb", 0) > 0


def test_a_single_write_that_meets_a_step_s_transaction_is_sent_again_not_lost():
    # Given DynamoDB's behaviour: a single write on an item a transaction holds is refused
    # (TransactionConflictException), and a rollout whose record every ticket request rewrites
    with conductor_with_faults("conflicts=150") as (server, ctx):
        start_rollout(ctx, "r-annotate")
        before = server.fault_counts().get("TransactionConflictException", 0)

        # When the builder annotates the rollout while a step's transaction holds its record
        stepping = threading.Thread(target=step, args=(ctx, TicketTaken("r-annotate", "b")))
        stepping.start()
        # (written again and again until one write lands inside the step's 150 ms hold, which the write's own
        # tries outlast, at least 200 ms: a fixed pause missed the hold when the step started late, on a loaded
        # machine)
        while stepping.is_alive() and server.fault_counts().get("TransactionConflictException", 0) == before:
            ctx.ledger.annotate_rollout("r-annotate", {"author": "Ada"})
        stepping.join(60)

        # Then the write met the transaction, was sent again, and both are recorded
        assert server.fault_counts()["TransactionConflictException"] > before
        record = ctx.ledger.rollout_item("r-annotate")
        assert record["author"] == "Ada"
        assert ctx.ledger.load_group(GROUP).rollout("r-annotate").ticket_of("b") is not None


def deliver_through(server: MotoServer, ctx: SimpleNamespace, events: list[object]) -> int:
    """Send ``events`` to a FIFO queue of ``server`` as the conductor's messages, and step each message
    received until the queue is empty, deleting it after its step as an acks_late worker does; the steps run."""
    sqs = aws_for(server.environment()).sqs
    url = sqs.create_queue(QueueName="maint-under-test.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for event in events:
        body, dedup = to_message(event)
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body), MessageGroupId=GROUP,
                         MessageDeduplicationId=dedup)
    steps = 0
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=0).get("Messages"):
        handle_maintenance(ctx, GROUP, json.loads(got[0]["Body"]))  # type: ignore[arg-type]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"])
        steps += 1
    return steps


def test_a_rollout_whose_every_event_is_delivered_twice_updates_each_member_once():
    # Given an SQS that delivers every message of the maintenance queue a second time (a late delete)
    with conductor_with_faults("duplicates=1") as (server, ctx):
        ctx.ledger.create_rollout("r-twice", GROUP, "sha-r-twice", RolloutKind.CODE, {})
        events = [RolloutReady(Rollout(id="r-twice", group=GROUP, release="sha-r-twice", canary="a",
                                       update_timeout=60)),
                  TicketTaken("r-twice", "b"), TicketTaken("r-twice", "c"),
                  *(UpdateReported("r-twice", number, member, ok=True)
                    for number, member in enumerate(MEMBERS, start=1))]

        # When the conductor steps every message it receives, each event twice
        steps = deliver_through(server, ctx, events)

        # Then no report was counted twice: each member updated once, in number order, and the rollout completed
        assert steps == 2 * len(events)
        assert server.fault_counts()["duplicated:fifo"] == len(events)
        assert ctx.ledger.rollout_item("r-twice")["state"] == "completed"
        updated = [instance for instance, task, _ in ctx.messenger.sent if task == UPDATE_TASK]
        assert updated == ["a", "b", "c"]
        tickets = ctx.ledger.rollout_view("r-twice")["tickets"]
        assert [(t["number"], t["instance"], t["state"]) for t in tickets] == [
            (1, "a", "done"), (2, "b", "done"), (3, "c", "done")]


def test_a_rollout_completes_while_eventually_consistent_reads_are_stale():
    # Given a DynamoDB whose eventually consistent reads answer the version before the last write for 30 s
    with conductor_with_faults("stale-reads=30") as (server, ctx):

        # When a whole rollout goes through the conductor
        start_rollout(ctx, "r-stale")
        step(ctx, TicketTaken("r-stale", "b"))
        step(ctx, TicketTaken("r-stale", "c"))
        for number, member in enumerate(MEMBERS, start=1):
            step(ctx, UpdateReported("r-stale", number, member, ok=True))

        # Then it completed, each member updated once: the conductor reads consistently, where stale reads
        # really were served (an eventually consistent scan still sees the rollout before its last write)
        assert ctx.ledger.rollout_item("r-stale")["state"] == "completed"
        assert [i for i, task, _ in ctx.messenger.sent if task == UPDATE_TASK] == ["a", "b", "c"]
        seen = ctx.ledger.db.scan(TableName=ctx.ledger.table)["Items"]
        assert "completed" not in [item.get("state", {}).get("S") for item in seen]
        assert server.fault_counts()["stale-read:dynamodb"] > 0
