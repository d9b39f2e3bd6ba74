"""One conductor step (``step.decide_and_write_until_settled``), on the state table of moto's server over HTTP.

A run of ticket requests decided in one step (``then=...``): one read, one conditional write, all of the
run or none of it. And a report's step goes first, against the steps of members lining up meanwhile: the
members line up while the canary updates (``rules.rollout_ready``), and in a large group some are still
asking when it reports; their steps and the report's collide on the group's version, and the loser
decides again. A report's step decides again at once, the others after a jitter; publication reads the
registry before the group.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterator

import pytest
from ledgerkit import AnotherStepWritesFirst
from statetablekit import state_table_ledger

from skynet_tasks import step
from skynet_tasks.conductor import Group, Rollout, RolloutReady, TicketTaken, UpdateReported
from skynet_tasks.ledger import Ledger
from skynet_tasks.ledger.reads import Focus, Reader, partial_view
from skynet_tasks.states import RolloutKind, TicketState
from skynet_tasks.step import decide_and_write_until_settled

pytestmark = pytest.mark.timeout(60)

MEMBERS = ("a", "b", "c", "d", "e")


@pytest.fixture(scope="module")
def ledger():
    with state_table_ledger(["local-api"]) as on_moto:
        yield on_moto


def published(ledger: Ledger, group: str, rollout_id: str) -> None:
    """A rollout whose canary (a) succeeded: the others may take their tickets."""
    ledger.create_rollout(rollout_id, group, "s1", RolloutKind.CODE, {})
    for event in (RolloutReady(Rollout(id=rollout_id, group=group, release="s1", canary="a", update_timeout=60)),
                  UpdateReported(rollout_id, 1, "a", ok=True)):
        decide_and_write_until_settled(ledger, group, event, MEMBERS, now=time.time())


def holders(ledger: Ledger, group: str, rollout_id: str) -> dict[str, int]:
    rollout = ledger.load_group(group).rollout(rollout_id)
    assert rollout is not None
    return {t.instance: t.number for t in rollout.tickets}


def test_a_run_of_ticket_requests_is_one_write_in_the_order_received_duplicates_ignored(ledger):
    group = "local-batch"
    published(ledger, group, "r-run")
    version = ledger.load_group(group).version

    decision = decide_and_write_until_settled(ledger, group, TicketTaken("r-run", "c"), MEMBERS,
                                              then=[TicketTaken("r-run", "b"), TicketTaken("r-run", "c"),
                                                    TicketTaken("r-run", "d")])

    assert ledger.load_group(group).version == version + 1  # one conditional write for the whole run
    assert holders(ledger, group, "r-run") == {"a": 1, "c": 2, "b": 3, "d": 4}
    assert [str(t.state) for t in ledger.load_group(group).rollout("r-run").tickets] == \
        ["done", "updating", "waiting", "waiting"]  # type: ignore[union-attr]
    assert [(a.instance, a.ticket) for a in decision.actions] == [("c", 2)]  # c's turn, dispatched once


def test_a_partial_read_for_a_run_holds_each_requesters_ticket(ledger):
    group = "local-batch-read"
    published(ledger, group, "r-read")
    decide_and_write_until_settled(ledger, group, TicketTaken("r-read", "b"), MEMBERS,
                                   then=[TicketTaken("r-read", m) for m in ("c", "d", "e")])
    whole = ledger.load_group(group)

    for focus in (Focus("r-read", instances=("e", "b")), Focus("r-read", instances=("d", "nobody")),
                  Focus("r-read", instances=("c", "e"))):
        assert ledger.load_group(group, focus) == partial_view(whole, focus), focus
    # The open window (b updating, c next, d after it), and beyond it only the tickets the focus names.
    read = ledger.load_group(group, Focus("r-read", instances=("e",))).rollout("r-read")
    assert read is not None and [t.instance for t in read.tickets] == ["b", "c", "d", "e"]
    read = ledger.load_group(group, Focus("r-read", instances=("b",))).rollout("r-read")
    assert read is not None and [t.instance for t in read.tickets] == ["b", "c", "d"]


def test_a_run_that_loses_its_write_writes_none_of_it_and_decides_it_all_again_after_the_winner(ledger):
    group = "local-batch-race"
    published(ledger, group, "r-race")
    racing = AnotherStepWritesFirst(ledger, group, "r-race", ["e"], MEMBERS)

    decide_and_write_until_settled(racing, group, TicketTaken("r-race", "b"), MEMBERS,  # type: ignore[arg-type]
                                   then=[TicketTaken("r-race", "c"), TicketTaken("r-race", "d")])

    assert racing.refused == 1
    assert holders(ledger, group, "r-race") == {"a": 1, "e": 2, "b": 3, "c": 4, "d": 5}


class AnotherStepWritesDuringTheRead:
    """The ledger, except that the first read of a group waits while another step (``event``) is decided and
    written: as a read throttled and retried for a while can, on AWS."""

    def __init__(self, ledger: Ledger, event: UpdateReported) -> None:
        self.ledger, self.event = ledger, event

    def load_group(self, group: str, focus: Focus | None = None) -> object:
        if self.event is not None:
            event, self.event = self.event, None
            time.sleep(0.01)
            decide_and_write_until_settled(self.ledger, group, event, MEMBERS)
        return self.ledger.load_group(group, focus)

    def __getattr__(self, name: str) -> object:
        return getattr(self.ledger, name)


def test_a_step_whose_read_waited_for_another_steps_write_decides_at_a_time_after_it(ledger):
    # The canary's report publishes while a member's ticket request is being read: the request, decided on
    # what the report wrote, starts ticket 2, at a time after ticket 1 finished, never before it.
    group = "local-clock"
    ledger.create_rollout("r-clock", group, "s1", RolloutKind.CODE, {})
    ready = RolloutReady(Rollout(id="r-clock", group=group, release="s1", canary="a", update_timeout=60))
    decide_and_write_until_settled(ledger, group, ready, MEMBERS)
    slow = AnotherStepWritesDuringTheRead(ledger, UpdateReported("r-clock", 1, "a", ok=True))

    decide_and_write_until_settled(slow, group, TicketTaken("r-clock", "b"), MEMBERS)  # type: ignore[arg-type]

    first, second = ledger.load_group(group).rollout("r-clock").tickets[:2]  # type: ignore[union-attr]
    assert (str(first.state), str(second.state)) == ("done", "updating")
    assert first.finished_at is not None and second.started_at is not None
    assert second.started_at >= first.finished_at


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
