"""The state table's guarantees that the conductor's purity relies on, against moto's server over HTTP."""

from __future__ import annotations

import time

import pytest

from skynet_tasks import names
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.conductor import (
    Focus,
    Group,
    OperatorAction,
    Rollout,
    RolloutReady,
    TicketTaken,
    UpdateReported,
    decide,
    partial_view,
)
from skynet_tasks.ledger import Conflict, Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.states import RolloutKind

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def ledger():
    server = MotoServer.start()
    aws = aws_for(server.environment())
    bootstrap_env(aws, "local", ["local-api"])
    yield Ledger(aws.dynamodb, names.state_table("local"))
    server.stop()


def step(ledger: Ledger, event: object) -> Group:
    before = ledger.load_group("local-api")
    decision = decide(before, event, time.time(), ["a", "b"])  # type: ignore[arg-type]
    ledger.write_decision(before, decision)
    return decision.group


def test_a_duplicate_update_message_after_the_report_is_refused_but_a_retry_runs(ledger):
    # Found by the model test: a redispatched update message that arrived after the update finished,
    # but before the conductor read the report, ran the whole update a second time.
    ledger.create_rollout("r-dup", "local-api", "s1", RolloutKind.CODE, {})
    step(ledger, RolloutReady(Rollout(id="r-dup", group="local-api", release="s1", canary="a", update_timeout=60)))

    assert ledger.acknowledge_ticket("r-dup", 1, "b") is None  # not b's ticket
    assert ledger.acknowledge_ticket("r-dup", 1, "a") == 1
    assert ledger.acknowledge_ticket("r-dup", 1, "a") == 1  # a redelivery after a crash runs again...
    ledger.annotate_ticket("r-dup", 1, {"reported_attempt": 1})
    assert ledger.acknowledge_ticket("r-dup", 1, "a") is None  # ...but not once it was reported

    step(ledger, UpdateReported("r-dup", 1, "a", ok=False, error="health check failed"))
    step(ledger, OperatorAction("r-dup", "retry"))
    assert ledger.acknowledge_ticket("r-dup", 1, "a") == 2  # the retry is a new attempt


def test_a_decision_on_a_stale_group_is_refused(ledger):
    before = ledger.load_group("local-api")
    ledger.create_rollout("r-race", "local-api", "s2", RolloutKind.CODE, {})
    first = decide(before, RolloutReady(Rollout(id="r-race", group="local-api", release="s2", canary="a")), 1, ["a"])
    second = decide(before, RolloutReady(Rollout(id="r-race", group="local-api", release="s2", canary="b")), 1, ["b"])
    ledger.write_decision(before, first)

    with pytest.raises(Conflict):
        ledger.write_decision(before, second)
    assert ledger.load_group("local-api").rollout("r-race").canary == "a"


def test_an_update_message_that_arrives_after_its_ticket_deadline_is_refused(ledger):
    before = ledger.load_group("local-late")
    ledger.create_rollout("r-late", "local-late", "s3", RolloutKind.CODE, {})
    dispatched = time.time() - 120  # the message waited two minutes behind a long build
    decision = decide(before, RolloutReady(Rollout(id="r-late", group="local-late", release="s3", canary="a",
                                                   update_timeout=60)), dispatched, ["a"])
    ledger.write_decision(before, decision)

    assert ledger.acknowledge_ticket("r-late", 1, "a") is None


def test_a_partial_read_holds_what_the_conductor_expects(ledger):
    group, members = "local-part", ["a", "b", "c", "d"]
    ledger.create_rollout("r-part", group, "s4", RolloutKind.CODE, {})

    def step(event: object) -> None:
        before = ledger.load_group(group)
        ledger.write_decision(before, decide(before, event, time.time(), members))  # type: ignore[arg-type]

    step(RolloutReady(Rollout(id="r-part", group=group, release="s4", canary="a", update_timeout=60)))
    step(UpdateReported("r-part", 1, "a", ok=True))
    for member in ("c", "b", "d"):
        step(TicketTaken("r-part", member))

    for focus in (Focus(), Focus("r-part", instance="b"), Focus("r-part", instance="a"), Focus("r-part", ticket=1),
                  Focus("r-part", instance="nobody")):
        assert ledger.load_group(group, focus) == partial_view(ledger.load_group(group), focus), focus
    partial = ledger.load_group(group, Focus("r-part", instance="d")).rollout("r-part")
    assert partial is not None and [t.instance for t in partial.tickets] == ["c", "b", "d"]  # updating, next, d's
