"""A report's step goes first: the hand-off's path, against the steps of members lining up meanwhile.

On moto's server over HTTP. The members line up while the canary updates (``rules.rollout_ready``), and
in a large group some are still asking when it reports: their steps and the report's collide on the
group's version, and the loser decides again (``step.decide_and_write_until_settled``).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator

import pytest
from ledgerkit import AnotherStepWritesFirst, bootstrapped_moto

from skynet_tasks import names, step
from skynet_tasks.conductor import Group, Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.ledger import Ledger
from skynet_tasks.ledger.reads import Focus, Reader
from skynet_tasks.states import RolloutKind, TicketState
from skynet_tasks.step import decide_and_write_until_settled

pytestmark = pytest.mark.timeout(60)

MEMBERS = ("a", "b", "c", "d", "e")


@pytest.fixture(scope="module")
def ledger():
    with bootstrapped_moto(["local-api"]) as (_, aws):
        yield Ledger(aws.dynamodb, names.state_table("local"))


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The waits the step makes before deciding again."""
    waited: list[float] = []
    monkeypatch.setattr(step.time, "sleep", waited.append)
    return waited


def canary_updating(ledger: Ledger, group: str, rollout_id: str) -> None:
    """A rollout whose canary (a) updates, b holding ticket 2: the others are still asking."""
    ledger.create_rollout(rollout_id, group, "s1", RolloutKind.CODE, {})
    decide_and_write_until_settled(ledger, group, RolloutReady(Rollout(id=rollout_id, group=group, release="s1",
                                                                       canary="a", update_timeout=60)), MEMBERS)
    decide_and_write_until_settled(ledger, group, TicketTaken(rollout_id, "b"), MEMBERS)


def states(ledger: Ledger, group: str, rollout_id: str) -> dict[str, str]:
    rollout = ledger.load_group(group).rollout(rollout_id)
    assert rollout is not None
    return {t.instance: str(t.state) for t in rollout.tickets}


def test_the_canarys_report_that_loses_to_a_ticket_request_decides_again_at_once(ledger, sleeps):
    group = "local-first"
    canary_updating(ledger, group, "r-first")
    racing = AnotherStepWritesFirst(ledger, group, "r-first", ["c", "d"], MEMBERS)

    decision = decide_and_write_until_settled(racing, group, UpdateReported("r-first", 1, "a", ok=True),  # type: ignore[arg-type]
                                              MEMBERS)

    assert racing.refused == 2  # c's request, then d's, wrote first
    assert sleeps == []  # and the report decided again each time without waiting
    assert [(a.instance, a.ticket) for a in decision.actions] == [("b", 2)]
    assert states(ledger, group, "r-first") == {"a": "done", "b": "updating", "c": "waiting", "d": "waiting"}


def test_a_ticket_request_that_loses_waits_a_jitter_before_deciding_again(ledger, sleeps):
    group = "local-jitter"
    canary_updating(ledger, group, "r-jitter")
    racing = AnotherStepWritesFirst(ledger, group, "r-jitter", ["d"], MEMBERS)

    decide_and_write_until_settled(racing, group, TicketTaken("r-jitter", "c"), MEMBERS)  # type: ignore[arg-type]

    assert racing.refused == 1
    assert len(sleeps) == 1 and 0.01 <= sleeps[0] < 0.1  # so that a report colliding with it wins the next round
    assert states(ledger, group, "r-jitter") == {"a": "updating", "b": "waiting", "d": "waiting", "c": "waiting"}


class Members(Collection[str]):
    """The group's live members, noting in ``order`` each time the step consults them (the registry's query)."""

    def __init__(self, order: list[str]) -> None:
        self.order = order

    def __contains__(self, instance: object) -> bool:
        self.order.append("registry")
        return instance in MEMBERS

    def __iter__(self) -> Iterator[str]:
        self.order.append("registry")
        return iter(MEMBERS)

    def __len__(self) -> int:
        self.order.append("registry")
        return len(MEMBERS)


class Calls:
    """The order of a step's reads: the group's (``load_group``) and the registry's (``members``)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.order: list[str] = []
        self.members = Members(self.order)

    def load_group(self, group: str, focus: Focus | None = None) -> Group:
        self.order.append("group")
        return self.ledger.load_group(group, focus)


def test_publication_reads_the_registry_before_the_group_a_ticket_request_never_reads_it(ledger):
    # The registry's query stays out of the time between the group's read and the publication's write.
    group = "local-order"
    canary_updating(ledger, group, "r-order")
    calls = Calls(ledger)

    view, decision = Reader(calls, group, UpdateReported("r-order", 1, "a", ok=True),  # type: ignore[arg-type]
                            calls.members).read_and_decide(time.time())

    assert calls.order[:2] == ["registry", "group"] and "group" not in calls.order[2:]  # one partial read
    rollout = decision.group.rollout("r-order")
    assert rollout is not None and rollout.published and rollout.expected == MEMBERS
    assert [t.state for t in rollout.tickets[:2]] == [TicketState.DONE, TicketState.UPDATING]

    request = Calls(ledger)
    Reader(request, group, TicketTaken("r-order", "c"), request.members).read_and_decide(time.time())
    assert request.order == ["group"]
