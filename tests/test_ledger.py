"""The state table's guarantees that the conductor's purity relies on, and one conductor step written on it,
against moto's server over HTTP. How a rollout's expected members are stored is in
test_ledger_expected_members.py."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError
from ledgerkit import AnotherStepWritesFirst
from statetablekit import state_table_ledger, step

from skynet_tasks.conductor import (
    OperatorAction,
    Rollout,
    RolloutReady,
    TicketTaken,
    UpdateReported,
    decide,
)
from skynet_tasks.ledger import Conflict, Ledger
from skynet_tasks.ledger.reads import Focus, partial_view
from skynet_tasks.states import RolloutKind
from skynet_tasks.step import Unsettled, decide_and_write_until_settled

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def ledger():
    with state_table_ledger(["local-api"]) as ledger:
        yield ledger


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


def test_a_step_writes_only_what_it_changed_and_keeps_an_acknowledgement_made_after_its_read(ledger):
    ledger.create_rollout("r-ack", "local-ack", "s1", RolloutKind.CODE, {})
    step(ledger, RolloutReady(Rollout(id="r-ack", group="local-ack", release="s1", canary="a", update_timeout=60)),
         "local-ack")
    before = ledger.load_group("local-ack")  # ticket 1 updating, not acknowledged yet
    assert ledger.acknowledge_ticket("r-ack", 1, "a") == 1  # the canary starts between the step's read and write
    acknowledged = ledger.ticket("r-ack", 1)["acknowledged_at"]  # type: ignore[index]

    decision = decide(before, UpdateReported("r-ack", 1, "a", ok=True), time.time(), ("a", "b"))
    ledger.write_decision(before, decision)

    ticket = ledger.ticket("r-ack", 1)
    assert ticket is not None and ticket["state"] == "done" and ticket["acknowledged_at"] == acknowledged


def test_a_partial_read_holds_what_the_conductor_expects(ledger):
    group, members = "local-part", ("a", "b", "c", "d")
    ledger.create_rollout("r-part", group, "s4", RolloutKind.CODE, {})
    for event in (RolloutReady(Rollout(id="r-part", group=group, release="s4", canary="a", update_timeout=60)),
                  UpdateReported("r-part", 1, "a", ok=True), *(TicketTaken("r-part", m) for m in ("c", "b", "d"))):
        step(ledger, event, group, members)

    def holds_what_the_conductor_expects() -> None:
        for focus in (Focus(), Focus("r-part", instances=("b",)), Focus("r-part", instances=("a",)),
                      Focus("r-part", instances=("nobody",)), Focus("other", ticket=2),
                      *(Focus("r-part", ticket=n) for n in range(1, 6))):
            assert ledger.load_group(group, focus) == partial_view(ledger.load_group(group), focus), focus

    holds_what_the_conductor_expects()  # 1 done (a); 2 updating (c); 3, 4 waiting (b, d)
    partial = ledger.load_group(group, Focus("r-part", instances=("d",))).rollout("r-part")
    assert partial is not None and [t.instance for t in partial.tickets] == ["c", "b", "d"]  # updating, next, d's
    step(ledger, UpdateReported("r-part", 2, "c", ok=True), group, members)
    step(ledger, UpdateReported("r-part", 3, "b", ok=True), group, members)
    holds_what_the_conductor_expects()  # the last ticket updates: a window of one
    step(ledger, OperatorAction("r-part", "pause"), group, members)
    step(ledger, UpdateReported("r-part", 4, "d", ok=False, error="health check failed"), group, members)
    holds_what_the_conductor_expects()  # halted: an empty window


def test_a_report_of_the_updating_ticket_is_decided_on_one_read(ledger):
    group = "local-one-read"
    ledger.create_rollout("r-one", group, "s5", RolloutKind.CODE, {})
    for event in (RolloutReady(Rollout(id="r-one", group=group, release="s5", canary="a", update_timeout=60)),
                  TicketTaken("r-one", "b"), TicketTaken("r-one", "c")):
        step(ledger, event, group, ("a", "b", "c"))
    requests: list[str] = []

    def count(event_name: str, **_: object) -> None:
        requests.append(event_name.rsplit(".", 1)[-1])

    ledger.db.meta.events.register("before-call.dynamodb", count)
    try:
        group_read = ledger.load_group(group, Focus("r-one", ticket=1))
    finally:
        ledger.db.meta.events.unregister("before-call.dynamodb", count)

    assert requests == ["TransactGetItems"]
    assert [t.number for t in group_read.line[0].tickets] == [1, 2, 3]  # the canary updating, b next, c after


class CancelsTransactionalReads:
    """The state table's client, except that DynamoDB cancels its transactional reads (a concurrent write)."""

    def __init__(self, db: object) -> None:
        self.db = db
        self.cancelled = 0

    def transact_get_items(self, **_: object) -> None:
        self.cancelled += 1
        raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "Transaction cancelled, "
                           "please refer cancellation reasons for specific reasons [None, TransactionConflict]"}},
                          "TransactGetItems")

    def __getattr__(self, name: str) -> object:
        return getattr(self.db, name)


def test_a_cancelled_snapshot_read_is_read_one_item_at_a_time_instead(ledger):
    group = "local-cancelled"
    ledger.create_rollout("r-cancel", group, "s6", RolloutKind.CODE, {})
    for event in (RolloutReady(Rollout(id="r-cancel", group=group, release="s6", canary="a", update_timeout=60)),
                  TicketTaken("r-cancel", "b")):
        step(ledger, event, group)
    cancelling = CancelsTransactionalReads(ledger.db)
    conflicted = Ledger(cancelling, ledger.table)

    for focus in (Focus("r-cancel", ticket=1), Focus("r-cancel", instances=("b",))):
        assert conflicted.load_group(group, focus) == partial_view(ledger.load_group(group), focus), focus
    assert cancelling.cancelled == 2


def test_the_members_a_rollout_expects_stay_out_of_the_record_every_step_reads(ledger):
    group = "local-expected"
    ledger.create_rollout("r-exp", group, "s7", RolloutKind.CODE, {})
    for event in (RolloutReady(Rollout(id="r-exp", group=group, release="s7", canary="a", update_timeout=60)),
                  UpdateReported("r-exp", 1, "a", ok=True)):  # publication: a, b and c are expected
        step(ledger, event, group, ("a", "b", "c"))

    assert "expected" not in (ledger.rollout_item("r-exp") or {})  # the record a partial read gets
    assert ledger.load_group(group).rollout("r-exp").expected == ("a", "b", "c")
    assert ledger.load_group(group, Focus("r-exp", ticket=1)).rollout("r-exp").expected == ()
    assert ledger.rollout_view("r-exp")["expected"] == ["a", "b", "c"]


# ---- one conductor step (skynet_tasks.step): a step that loses its write decides again, and gives up clearly

STEP_MEMBERS = ("a", "b", "c", "d", "e", "f")


def published_rollout(ledger: Ledger, group: str, rollout_id: str) -> None:
    """A rollout whose canary (a) succeeded: the others may take their tickets."""
    ledger.create_rollout(rollout_id, group, "s1", RolloutKind.CODE, {})
    for event in (RolloutReady(Rollout(id=rollout_id, group=group, release="s1", canary="a", update_timeout=60)),
                  UpdateReported(rollout_id, 1, "a", ok=True)):
        decide_and_write_until_settled(ledger, group, event, STEP_MEMBERS, now=time.time())


def test_a_step_that_loses_its_write_decides_again_on_what_the_winner_wrote(ledger):
    group = "local-settle"
    published_rollout(ledger, group, "r-settle")
    racing = AnotherStepWritesFirst(ledger, group, "r-settle", ["c", "d"], STEP_MEMBERS, times=2)

    decision = decide_and_write_until_settled(racing, group, TicketTaken("r-settle", "b"), STEP_MEMBERS)  # type: ignore[arg-type]

    assert racing.refused == 2  # b's ticket lost its write twice, each time to another member's
    rollout = ledger.load_group(group).rollout("r-settle")
    assert rollout is not None
    holders = {t.instance: t.number for t in rollout.tickets}
    assert holders == {"a": 1, "c": 2, "d": 3, "b": 4}  # b's ticket follows the winners', nobody's was lost
    assert decision.touched[0].ticket_of("b").number == 4  # type: ignore[union-attr]


def test_a_step_that_keeps_losing_gives_up_with_an_error_that_says_so(ledger):
    group = "local-unsettled"
    published_rollout(ledger, group, "r-unsettled")
    racing = AnotherStepWritesFirst(ledger, group, "r-unsettled", ["c", "d", "e"], STEP_MEMBERS, times=3)

    with pytest.raises(Unsettled, match="gave up after 3 decisions that all lost to another step's write"):
        decide_and_write_until_settled(racing, group, TicketTaken("r-unsettled", "b"), STEP_MEMBERS,  # type: ignore[arg-type]
                                       attempts=3)

    rollout = ledger.load_group(group).rollout("r-unsettled")
    assert rollout is not None and rollout.ticket_of("b") is None  # nothing of the lost step was written


def test_a_step_that_halts_cancels_the_waiting_tickets_its_partial_read_did_not_hold(ledger):
    group = "local-halt-whole"
    published_rollout(ledger, group, "r-halt")
    for member in ("b", "c", "d", "e"):  # b updates; c is next, d after it; e waits beyond the open window
        decide_and_write_until_settled(ledger, group, TicketTaken("r-halt", member), STEP_MEMBERS)
    failed = UpdateReported("r-halt", 2, "b", ok=False, error="health check failed")
    assert "e" not in [t.instance for t in ledger.load_group(group, Focus("r-halt", ticket=2)).line[0].tickets]

    decide_and_write_until_settled(ledger, group, failed, STEP_MEMBERS)

    rollout = ledger.load_group(group).rollout("r-halt")
    assert rollout is not None and str(rollout.state) == "halted"
    assert {t.instance: str(t.state) for t in rollout.tickets} == {
        "a": "done", "b": "failed", "c": "cancelled", "d": "cancelled", "e": "cancelled"}

