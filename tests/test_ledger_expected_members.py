"""A rollout's expected members in the state table, against moto's server over HTTP: chunks that never grow with
the group (``skynet_tasks.ledger.expected``). A rollout of 20,000 members is published in one decision and read back
whole, as are members past one query page; writing a set again changes nothing, a smaller set leaves no chunk of the
larger, and the single item an older Skynet wrote is read and replaced by chunks.
"""

from __future__ import annotations

import pytest
from statetablekit import state_table_ledger, step

from skynet_tasks.conductor import Rollout, RolloutReady, UpdateReported
from skynet_tasks.ledger import Ledger
from skynet_tasks.ledger.expected import CHUNK_BYTES, ExpectedTooLarge, chunks, expected_writes
from skynet_tasks.ledger.item_size import MAX_ITEM_BYTES, item_size
from skynet_tasks.states import RolloutKind

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def ledger():
    with state_table_ledger(["local-api"]) as ledger:
        yield ledger


def ec2_ids(count: int, digits: int = 17) -> list[str]:
    """Instance ids as EC2 makes them (``i-`` and 17 hex digits), or longer (moto serves few long ones faster)."""
    return [f"i-{n:0{digits}x}" for n in range(count)]


def expected_items(ledger: Ledger, rollout_id: str) -> list[dict]:
    """The rollout's expected items as stored (raw), read page by page."""
    pages = ledger.db.get_paginator("query").paginate(
        TableName=ledger.table, KeyConditionExpression="pk = :pk AND begins_with(sk, :e)", ConsistentRead=True,
        ExpressionAttributeValues={":pk": {"S": f"rollout#{rollout_id}"}, ":e": {"S": "expected"}})
    return [item for page in pages for item in page["Items"]]


@pytest.mark.timeout(60)  # moto serves a query of 20,000 list elements in seconds; real DynamoDB in milliseconds
def test_a_rollout_of_20000_members_is_published_in_one_decision_and_read_back_whole(ledger):
    # Given a group of 20,000 live members whose canary is updating
    group, members = "local-huge", ec2_ids(20_000)
    ledger.create_rollout("r-huge", group, "s9", RolloutKind.CODE, {})
    step(ledger, RolloutReady(Rollout(id="r-huge", group=group, release="s9", canary=members[0], update_timeout=60)),
         group, tuple(members))

    # When the canary's success publishes the rollout
    step(ledger, UpdateReported("r-huge", 1, members[0], ok=True), group, tuple(members))

    # Then every member is expected, read back whole (each chunk's size: the tests below)
    assert ledger.load_group(group).rollout("r-huge").expected == tuple(sorted(members))
    # ...where the one item of before held them all: 98% of 400 KB, past it at 20,500 such members
    legacy = {"pk": {"S": "rollout#r-huge"}, "sk": {"S": "expected"}, "members": {"L": [{"S": m} for m in members]}}
    assert 0.97 * MAX_ITEM_BYTES < item_size(legacy) < MAX_ITEM_BYTES


def test_expected_members_past_one_page_are_read_whole(ledger):
    # Given a rollout expecting 1,200 members of 1 KB ids: 1.2 MB, more than one query page
    members = ec2_ids(1_200, digits=1_000)
    ledger.create_rollout("r-paged", "local-paged", "s1", RolloutKind.CODE, {})
    ledger.db.transact_write_items(TransactItems=expected_writes(ledger.table, "r-paged", (), members))
    page = ledger.db.query(TableName=ledger.table, KeyConditionExpression="pk = :pk", ConsistentRead=True,
                           ExpressionAttributeValues={":pk": {"S": "rollout#r-paged"}})
    assert "LastEvaluatedKey" in page  # one plain query stops short

    assert ledger.rollout_view("r-paged")["expected"] == members
    stored = expected_items(ledger, "r-paged")
    assert len(stored) == 13 and max(item_size(i) for i in stored) <= CHUNK_BYTES


def test_writing_a_set_again_changes_nothing_and_a_smaller_set_leaves_no_chunk_of_the_larger(ledger):
    big, small = ec2_ids(2_500, digits=100), ec2_ids(3)
    ledger.create_rollout("r-again", "local-again", "s1", RolloutKind.CODE, {})

    def apply(before: list[str], after: list[str]) -> None:
        ledger.db.transact_write_items(TransactItems=expected_writes(ledger.table, "r-again", before, after))

    apply([], big)
    apply([], big)  # a redelivered or retried transaction
    assert ledger.rollout_view("r-again")["expected"] == big and len(expected_items(ledger, "r-again")) == 3
    apply(big, small)
    apply(big, small)
    assert ledger.rollout_view("r-again")["expected"] == small
    assert [i["sk"]["S"] for i in expected_items(ledger, "r-again")] == ["expected#000000"]


def test_the_single_item_an_older_skynet_wrote_is_read_and_replaced_by_chunks(ledger):
    ledger.create_rollout("r-old", "local-old", "s1", RolloutKind.CODE, {})
    ledger.db.put_item(TableName=ledger.table, Item={"pk": {"S": "rollout#r-old"}, "sk": {"S": "expected"},
                                                     "members": {"L": [{"S": "b"}, {"S": "a"}]}})
    assert ledger.rollout_view("r-old")["expected"] == ["a", "b"]

    ledger.db.transact_write_items(TransactItems=expected_writes(ledger.table, "r-old", ["a", "b"], ["a", "c"]))

    assert ledger.rollout_view("r-old")["expected"] == ["a", "c"]
    assert [i["sk"]["S"] for i in expected_items(ledger, "r-old")] == ["expected#000000"]


def test_chunks_stay_bounded_whatever_the_group_and_a_set_one_decision_cannot_carry_is_refused():
    many = ec2_ids(140_000)
    cut = chunks(many)
    assert [m for chunk in cut for m in chunk] == many
    assert max(item_size({"pk": {"S": "rollout#" + "r" * 40}, "sk": {"S": "expected#000000"},
                          "members": {"L": [{"S": m} for m in chunk]}}) for chunk in cut) <= CHUNK_BYTES
    assert chunks([]) == []
    with pytest.raises(ExpectedTooLarge, match="more than one decision can publish"):
        chunks(ec2_ids(200_000))
    with pytest.raises(ExpectedTooLarge, match="cannot be stored"):
        chunks(["x" * MAX_ITEM_BYTES])
