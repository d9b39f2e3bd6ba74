"""A member told to take a ticket, on moto's server over HTTP: once when the rollout starts; again, later and
only if it holds none, when the release is published (the members that joined during the canary); and told to
prepare (start its pool child) once its ticket is the next to start."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from ledgerkit import bootstrapped_moto, instance_context

from skynet_tasks import names, trailing
from skynet_tasks.aws import Aws
from skynet_tasks.conductor import Decision, Group, Notify, Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.context import Context
from skynet_tasks.events import to_message
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.messages import PREPARE_TASK, UPDATE_TASK
from skynet_tasks.states import RolloutKind
from skynet_tasks.step import decide_and_write_until_settled
from skynet_tasks.tasks.maintenance import NOTIFY_AGAIN_AFTER, PREPARE_AFTER, handle_maintenance, tell
from skynet_tasks.tasks.take_ticket import handle_take_ticket

pytestmark = pytest.mark.timeout(120)

GROUP = "local-api"
ME = "api-1"
MEMBERS = ("api-0", ME, "api-2")
OWN_LINE = "local-prepare"
TRAILING_LINE = "local-trailing"


@pytest.fixture(scope="module")
def local_env() -> Iterator[tuple[MotoServer, Aws]]:
    """The group, and groups whose lines no other test's rollouts hold (a canary there updates at once)."""
    with bootstrapped_moto([GROUP, OWN_LINE, TRAILING_LINE]) as started:
        yield started


@pytest.fixture
def ctx(local_env, tmp_path) -> Context:
    return instance_context(*local_env, tmp_path, ME, GROUP)


def started_rollout(ctx: Context, rollout_id: str, group: str = GROUP) -> None:
    """A rollout whose canary (api-0) updates, or waits for the group's rollout before it."""
    ctx.ledger.create_rollout(rollout_id, group, "s1", RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id=rollout_id, group=group, release="s1", canary="api-0", update_timeout=60))
    decide_and_write_until_settled(ctx.ledger, group, ready, MEMBERS)


def received(ctx: Context, queue: str) -> list[dict[str, Any]]:
    """The kombu envelopes waiting in ``queue`` (taken off it)."""
    url = ctx.aws.sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    found = []
    while True:
        got = ctx.aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not got:
            return found
        for message in got:
            found.append(json.loads(base64.b64decode(message["Body"])))
            ctx.aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def ticket_requests(ctx: Context) -> list[dict[str, Any]]:
    """The ticket requests sent to the group's conductor."""
    bodies = [json.loads(base64.b64decode(envelope["body"])) for envelope in
              received(ctx, names.maintenance_queue("local", GROUP))]
    return [kwargs["event"] for _, kwargs, _ in bodies if kwargs.get("event", {}).get("type") == "ticket_taken"]


def test_told_again_a_member_that_holds_a_ticket_asks_for_none_and_one_without_asks(ctx):
    started_rollout(ctx, "r-again")
    received(ctx, names.maintenance_queue("local", GROUP))  # what the steps above left there
    decide_and_write_until_settled(ctx.ledger, GROUP, TicketTaken("r-again", ME), MEMBERS)

    handle_take_ticket(ctx, "r-again", again=True)
    assert ticket_requests(ctx) == []  # its first request was decided: nothing more for the conductor

    handle_take_ticket(ctx, "r-again")  # told the first time: it asks whatever it holds (the conductor dedups)
    assert [e["instance"] for e in ticket_requests(ctx)] == [ME]

    started_rollout(ctx, "r-joined")
    received(ctx, names.maintenance_queue("local", GROUP))
    handle_take_ticket(ctx, "r-joined", again=True)  # joined during the canary: no ticket, so it asks
    assert [(e["rollout_id"], e["instance"]) for e in ticket_requests(ctx)] == [("r-joined", ME)]


def test_the_second_notification_is_held_by_the_member_until_its_requests_were_decided(ctx):
    ctx.aws.sqs.create_queue(QueueName=names.instance_queue("local", ME))  # (an instance makes its own at boot)
    sent = time.time()

    tell(ctx, Decision(Group(GROUP), actions=(Notify((ME,), "r-later", again=True), Notify((ME,), "r-now"))))

    envelopes = {json.loads(base64.b64decode(e["body"]))[1]["rollout_id"]: e
                 for e in received(ctx, names.instance_queue("local", ME))}
    later, now = envelopes["r-later"], envelopes["r-now"]
    assert json.loads(base64.b64decode(later["body"]))[1] == {"rollout_id": "r-later", "again": True}
    eta = later["headers"]["eta"]
    assert eta is not None and now["headers"]["eta"] is None
    assert datetime.fromisoformat(eta).timestamp() >= sent + NOTIFY_AGAIN_AFTER


def test_a_member_whose_ticket_becomes_the_next_to_start_is_told_to_prepare_once(ctx):
    ctx.aws.sqs.create_queue(QueueName=names.instance_queue("local", ME))
    received(ctx, names.instance_queue("local", ME))
    started_rollout(ctx, "r-prepare", OWN_LINE)  # its canary updates

    told = time.time()
    handle_maintenance(ctx, OWN_LINE, to_message(TicketTaken("r-prepare", ME))[0])  # next after the canary
    handle_maintenance(ctx, OWN_LINE, to_message(TicketTaken("r-prepare", "api-2"))[0])  # behind it: not next

    envelopes = received(ctx, names.instance_queue("local", ME))
    assert [envelope["headers"]["task"] for envelope in envelopes] == [PREPARE_TASK]
    # held by its worker a moment: the turn just dispatched is acknowledged before this child starts
    assert datetime.fromisoformat(envelopes[0]["headers"]["eta"]).timestamp() >= told + PREPARE_AFTER


def test_a_conductor_step_dispatches_the_turn_before_its_message_is_settled_and_tells_the_rest_after(ctx):
    for member in (ME, "api-2"):
        ctx.aws.sqs.create_queue(QueueName=names.instance_queue("local", member))
        received(ctx, names.instance_queue("local", member))
    started_rollout(ctx, "r-trailing", TRAILING_LINE)  # its canary (api-0) updates
    handle_maintenance(ctx, TRAILING_LINE, to_message(TicketTaken("r-trailing", ME))[0])
    received(ctx, names.instance_queue("local", ME))  # told to prepare: its ticket is the next

    with trailing.deferring() as later:  # as the conductor's thread runs a step
        handle_maintenance(ctx, TRAILING_LINE, to_message(TicketTaken("r-trailing", "api-2"))[0])
        handle_maintenance(ctx, TRAILING_LINE, to_message(UpdateReported("r-trailing", 1, "api-0", True))[0])
    in_the_step = {member: [e["headers"]["task"] for e in received(ctx, names.instance_queue("local", member))]
                   for member in (ME, "api-2")}
    trailing.run(later)
    after = [envelope["headers"]["task"] for envelope in received(ctx, names.instance_queue("local", "api-2"))]

    assert in_the_step == {ME: [UPDATE_TASK], "api-2": []}  # the turn, at once
    assert after == [PREPARE_TASK]  # api-2 is next now: told once the step's message is settled
