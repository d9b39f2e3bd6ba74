"""An update's report decided by the reporting instance itself (``tasks.report``), on moto's server.

What an operator sees: the next instance's update is dispatched by the reporter's own step, and no report
waits in the group's queue for a conductor; a step another member takes meanwhile makes this one decide
again, never both; and when the step here cannot be taken, the report still reaches a conductor.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest
from ledgerkit import AnotherStepWritesFirst, bootstrapped_moto, instance_context

from skynet_tasks import names
from skynet_tasks.aws import Aws
from skynet_tasks.buildrequest import new_rollout_id
from skynet_tasks.conductor import Decision, Group, Rollout, Ticket, UpdateReported
from skynet_tasks.context import Context
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import MAINTENANCE_TASK, UPDATE_TASK
from skynet_tasks.registry import Endpoint
from skynet_tasks.states import RolloutKind, RolloutState, TicketState
from skynet_tasks.tasks import re_register, report
from skynet_tasks.tasks import update as update_task
from skynet_tasks.tasks.maintenance import handle_maintenance

pytestmark = pytest.mark.timeout(120)

ME, NEXT = "api-1", "api-2"


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[MotoServer, Aws]]:
    with bootstrapped_moto(["local-api"]) as started:
        yield started


@pytest.fixture
def group(moto) -> str:
    """A group of this test's own, with its maintenance queue (each test starts from an empty line)."""
    name = f"group-{secrets.token_hex(4)}"
    moto[1].sqs.create_queue(QueueName=names.maintenance_queue("local", name),
                             Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"})
    return name


@pytest.fixture
def ctx(moto, tmp_path, group) -> Context:
    return instance_context(*moto, tmp_path, ME, group=group)


def my_ticket_updating(ctx: Context, group: str) -> str:
    """A published rollout whose ticket 1 updates on this instance and ticket 2 waits on the next; its id."""
    rollout_id, now = new_rollout_id(), time.time()
    rollout = Rollout(rollout_id, group, "c" * 40, state=RolloutState.RUNNING, created_at=now, canary=ME,
                      published=True, expected=(ME, NEXT), last_number=2, low_water=1,
                      tickets=(Ticket(1, ME, TicketState.UPDATING, now, now, deadline=now + 300),
                               Ticket(2, NEXT, TicketState.WAITING, now)))
    ctx.ledger.write_decision(Group(group), Decision(Group(group, line=(rollout,)), touched=(rollout,)))
    return rollout_id


def waiting(aws: Aws, queue: str) -> list[dict[str, Any]]:
    """The Celery messages waiting in ``queue`` (task and arguments), taken off it."""
    url = aws.sqs.create_queue(QueueName=queue, **({"Attributes": {"FifoQueue": "true"}}
                                                  if queue.endswith(".fifo") else {}))["QueueUrl"]
    found = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    for message in found:
        aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    envelopes = [json.loads(base64.b64decode(m["Body"])) for m in found]
    return [{"task": e["headers"]["task"], "kwargs": json.loads(base64.b64decode(e["body"]))[1]} for e in envelopes]


def states(ctx: Context, rollout_id: str) -> dict[int, str]:
    view = ctx.ledger.rollout_view(rollout_id)
    assert view is not None
    return {t["number"]: t["state"] for t in view["tickets"]}


def test_the_reporter_decides_its_report_and_dispatches_the_next_ticket_itself(moto, ctx, group):
    rollout_id = my_ticket_updating(ctx, group)

    report.report_update(ctx, UpdateReported(rollout_id, 1, ME, True, None, time.time()))

    assert states(ctx, rollout_id) == {1: "done", 2: "updating"}
    assert waiting(moto[1], names.instance_queue("local", NEXT)) == [
        {"task": UPDATE_TASK, "kwargs": {"rollout_id": rollout_id, "ticket": 2}}]
    assert waiting(moto[1], names.maintenance_queue("local", group)) == []  # nothing left for a conductor


def test_the_canarys_own_report_publishes_on_one_read_of_its_tickets(moto, ctx, group):
    # Given the canary's ticket updating, two members lined up behind it, and three live members
    now = time.time()
    for member in (ME, NEXT, "api-3"):
        ctx.registry.register("local", "api", Endpoint(member, group, "10.0.0.1", 8080, "old", "healthy", now))
    rollout_id = new_rollout_id()
    rollout = Rollout(rollout_id, group, "c" * 40, state=RolloutState.RUNNING, created_at=now, canary=ME,
                      last_number=3, low_water=1,
                      tickets=(Ticket(1, ME, TicketState.UPDATING, now, now, deadline=now + 300),
                               Ticket(2, NEXT, TicketState.WAITING, now), Ticket(3, "api-3", TicketState.WAITING, now)))
    ctx.ledger.write_decision(Group(group), Decision(Group(group, line=(rollout,)), touched=(rollout,)))
    calls: list[tuple[str, set[str]]] = []  # each DynamoDB call and the tables it names
    ctx.aws.dynamodb.meta.events.register("before-parameter-build.dynamodb", lambda model, params, **_: calls.append(
        (model.name, {params.get("TableName", "")} | {next(iter(item.values()))["TableName"]
                                                       for item in params.get("TransactItems", [])})))

    # When it reports its success
    report.report_update(ctx, UpdateReported(rollout_id, 1, ME, True, None, time.time()))
    step_calls = list(calls)  # the step's (not the checks' below)

    # Then the release is published, every live member expected, the next ticket dispatched
    published = ctx.ledger.load_group(group).rollout(rollout_id)
    assert published is not None and published.published and published.expected == (ME, NEXT, "api-3")
    assert states(ctx, rollout_id) == {1: "done", 2: "updating", 3: "waiting"}
    assert [m["kwargs"]["ticket"] for m in waiting(moto[1], names.instance_queue("local", NEXT))] == [2]
    # And the step read its tickets in one snapshot, never the whole line (the registry is queried for members)
    state, endpoints = ctx.resources.state_table, ctx.resources.endpoints_table
    assert [op for op, tables in step_calls if state in tables] == ["TransactGetItems", "TransactWriteItems"]
    assert [op for op, tables in step_calls if endpoints in tables] == ["Query"]


def test_a_step_another_member_wins_meanwhile_makes_the_reporter_decide_again(moto, ctx, group):
    rollout_id = my_ticket_updating(ctx, group)
    # Another member's ticket request is decided and written just before the reporter's write
    racing = AnotherStepWritesFirst(ctx.ledger, group, rollout_id, ["api-3"], {ME, NEXT, "api-3"})
    ctx = dataclasses.replace(ctx, ledger=racing)  # type: ignore[arg-type]

    report.report_update(ctx, UpdateReported(rollout_id, 1, ME, True, None, time.time()))

    assert racing.refused == 1  # lost once, then decided again on a fresh read
    assert states(ctx, rollout_id) == {1: "done", 2: "updating", 3: "waiting"}
    assert [m["kwargs"]["ticket"] for m in waiting(moto[1], names.instance_queue("local", NEXT))] == [2]


def test_a_report_the_reporter_cannot_decide_goes_to_the_groups_conductor(moto, ctx, group, monkeypatch):
    rollout_id = my_ticket_updating(ctx, group)

    def refused(*_: object, **__: object) -> None:
        raise botocore.exceptions.ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}},
                                              "TransactGetItems")

    monkeypatch.setattr(report, "handle_maintenance", refused)  # AWS refusing past the client's own retries
    event = UpdateReported(rollout_id, 1, ME, True, None, time.time())

    report.report_update(ctx, event)

    assert states(ctx, rollout_id) == {1: "updating", 2: "waiting"}  # nothing decided here
    [queued] = waiting(moto[1], names.maintenance_queue("local", group))
    assert queued["task"] == MAINTENANCE_TASK and queued["kwargs"]["group"] == group
    assert queued["kwargs"]["event"]["type"] == "update_reported" and queued["kwargs"]["event"]["ticket"] == 1


def test_a_report_written_but_never_decided_is_sent_again_by_the_next_heartbeat(moto, ctx, group, monkeypatch):
    # Given ticket 1 updating here, and a heartbeat before its update ran: nothing to send
    rollout_id = my_ticket_updating(ctx, group)
    re_register.handle_re_register(ctx)
    assert waiting(moto[1], names.maintenance_queue("local", group)) == []

    # When the update runs and writes its report, and its process dies before deciding it
    monkeypatch.setitem(update_task.UPDATERS, RolloutKind.CODE, lambda *_: "installed\n")
    monkeypatch.setattr(update_task, "report_update", lambda *_: None)
    update_task.handle_update(ctx, rollout_id, 1)
    assert states(ctx, rollout_id) == {1: "updating", 2: "waiting"}

    # Then the next heartbeat sends the report, with its outcome, to the group's conductor, which decides it
    re_register.handle_re_register(ctx)
    [queued] = waiting(moto[1], names.maintenance_queue("local", group))
    event = queued["kwargs"]["event"]
    assert (event["type"], event["ticket"], event["instance"], event["ok"]) == ("update_reported", 1, ME, True)
    handle_maintenance(ctx, group, event)
    assert states(ctx, rollout_id) == {1: "done", 2: "updating"}
    assert [m["kwargs"]["ticket"] for m in waiting(moto[1], names.instance_queue("local", NEXT))] == [2]
