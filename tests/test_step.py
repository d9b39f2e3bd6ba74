"""One conductor step (``skynet_tasks.step``): a step that loses its write decides again, and gives up clearly.

Against moto's server over HTTP: the conflicts are real conditional writes refused by DynamoDB.
"""

from __future__ import annotations

import time

import pytest

from skynet_tasks import names
from skynet_tasks.aws import aws_for
from skynet_tasks.bootstrap import bootstrap_env
from skynet_tasks.conductor import Decision, Group, Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.ledger import Conflict, Ledger
from skynet_tasks.local.motoserver import MotoServer
from skynet_tasks.resources import resolve
from skynet_tasks.states import RolloutKind
from skynet_tasks.step import Unsettled, decide_and_write_until_settled

pytestmark = pytest.mark.timeout(60)

MEMBERS = ("a", "b", "c", "d", "e", "f")


@pytest.fixture(scope="module")
def ledger():
    server = MotoServer.start()
    aws = aws_for(server.environment())
    bootstrap_env(aws, resolve(aws, "local"), ["local-api"])
    yield Ledger(aws.dynamodb, names.state_table("local"))
    server.stop()


class AnotherStepWritesFirst:
    """The ledger, except that before each of the first ``times`` writes another member's ticket is written."""

    def __init__(self, ledger: Ledger, group: str, rollout_id: str, others: list[str], times: int) -> None:
        self.ledger = ledger
        self.group = group
        self.rollout_id = rollout_id
        self.others = others
        self.times = times
        self.refused = 0

    def write_decision(self, before: Group, decision: Decision) -> None:
        if self.times:
            self.times -= 1
            decide_and_write_until_settled(self.ledger, self.group, TicketTaken(self.rollout_id, self.others.pop(0)),
                                           MEMBERS)
        try:
            self.ledger.write_decision(before, decision)
        except Conflict:
            self.refused += 1
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self.ledger, name)


def published_rollout(ledger: Ledger, group: str, rollout_id: str) -> None:
    """A rollout whose canary (a) succeeded: the others may take their tickets."""
    ledger.create_rollout(rollout_id, group, "s1", RolloutKind.CODE, {})
    for event in (RolloutReady(Rollout(id=rollout_id, group=group, release="s1", canary="a", update_timeout=60)),
                  UpdateReported(rollout_id, 1, "a", ok=True)):
        decide_and_write_until_settled(ledger, group, event, MEMBERS, now=time.time())


def test_a_step_that_loses_its_write_decides_again_on_what_the_winner_wrote(ledger):
    group = "local-settle"
    published_rollout(ledger, group, "r-settle")
    racing = AnotherStepWritesFirst(ledger, group, "r-settle", ["c", "d"], times=2)

    decision = decide_and_write_until_settled(racing, group, TicketTaken("r-settle", "b"), MEMBERS)  # type: ignore[arg-type]

    assert racing.refused == 2  # b's ticket lost its write twice, each time to another member's
    rollout = ledger.load_group(group).rollout("r-settle")
    assert rollout is not None
    holders = {t.instance: t.number for t in rollout.tickets}
    assert holders == {"a": 1, "c": 2, "d": 3, "b": 4}  # b's ticket follows the winners', nobody's was lost
    assert decision.touched[0].ticket_of("b").number == 4  # type: ignore[union-attr]


def test_a_step_that_keeps_losing_gives_up_with_an_error_that_says_so(ledger):
    group = "local-unsettled"
    published_rollout(ledger, group, "r-unsettled")
    racing = AnotherStepWritesFirst(ledger, group, "r-unsettled", ["c", "d", "e"], times=3)

    with pytest.raises(Unsettled, match="gave up after 3 decisions that all lost to another step's write"):
        decide_and_write_until_settled(racing, group, TicketTaken("r-unsettled", "b"), MEMBERS,  # type: ignore[arg-type]
                                       attempts=3)

    rollout = ledger.load_group(group).rollout("r-unsettled")
    assert rollout is not None and rollout.ticket_of("b") is None  # nothing of the lost step was written
