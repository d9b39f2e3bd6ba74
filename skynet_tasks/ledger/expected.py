"""The members a published rollout expects, stored in chunks that never grow with the group.

A rollout's expected members (every instance live at publication) were one item holding one
list: 400 KB, DynamoDB's largest item, is about 20,000 instance ids, so a large enough group
could never publish. They are now chunks of at most ``CHUNK_BYTES`` each, sort keys
``expected#000000``, ``expected#000001``… in the rollout's partition, members sorted across
them. The chunks are written in the decision that publishes the rollout, in its transaction
(``decisions``), so a rollout is never published without them, nor they written for a rollout
that lost its publication. A chunk is 100 KB at most, a quarter of an item, and the whole set is
bounded by what one transaction may carry (4 MB in all, ``MAX_SET_BYTES`` of it for the set):
about 150,000 members of 20 bytes, where the registry stops a layer at a few thousand
(``docs/aws.md``, "Limits").

Rewriting a set puts each chunk whole and deletes the chunks past the new set's last one, so
applying the same writes again leaves the same set (a retried or redelivered transaction).
Readers take the chunks from the rollout's partition (read page by page: ``Store.query_all``)
and the one ``expected`` item an older Skynet wrote.

Trusted: the member ids come from the conductor, which took them from the registry (entries
instances write); an id is a string whatever it holds, and a chunk is bounded by its bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from skynet_tasks.dynamo import to_item
from skynet_tasks.ledger.item_size import MAX_ITEM_BYTES
from skynet_tasks.ledger.table import key, rollout_pk

PREFIX = "expected#"
LEGACY_SK = "expected"  # the single item of every member, as Skynet wrote it before chunks
CHUNK_BYTES = 100_000
MAX_SET_BYTES = 3 * 1024 * 1024  # of TransactWriteItems' 4 MB: the rest is the decision's other items
_MEMBER_OVERHEAD = 1  # DynamoDB counts one byte per list element besides its value
_CHUNK_OVERHEAD = 200  # a chunk item's keys, attribute name and list overhead, generously


class ExpectedTooLarge(ValueError):
    """The members to expect are more than one decision's transaction can carry."""


def chunk_sk(number: int) -> str:
    """The sort key of chunk ``number`` of a rollout's expected members."""
    return f"{PREFIX}{number:06d}"


def chunks(members: Sequence[str]) -> list[list[str]]:
    """``members`` sorted, cut into chunks of at most ``CHUNK_BYTES`` each (an empty set: no chunk).

    ExpectedTooLarge when the set passes ``MAX_SET_BYTES``, or one id alone fills an item.
    """
    out: list[list[str]] = []
    size = 0
    total = 0
    for member in sorted(members):
        cost = len(member.encode()) + _MEMBER_OVERHEAD
        if cost + _CHUNK_OVERHEAD > MAX_ITEM_BYTES:
            raise ExpectedTooLarge(f"a member id of {cost} bytes cannot be stored: {member[:60]!r}...")
        total += cost
        if not out or size + cost > CHUNK_BYTES - _CHUNK_OVERHEAD:
            out.append([])
            size = 0
        out[-1].append(member)
        size += cost
    if total > MAX_SET_BYTES:
        raise ExpectedTooLarge(f"{len(members)} members ({total} bytes of ids) are more than one decision can "
                               f"publish ({MAX_SET_BYTES} bytes)")
    return out


def expected_writes(table: str, rollout_id: str, before: Sequence[str], after: Sequence[str]) -> list[dict[str, Any]]:
    """The transaction items that turn a rollout's stored set ``before`` into ``after``: every chunk of
    ``after`` put whole, the chunks past its last deleted (and the single item of an older Skynet)."""
    pk = rollout_pk(rollout_id)
    new = chunks(after)
    items: list[dict[str, Any]] = [
        {"Put": {"TableName": table, "Item": to_item({"pk": pk, "sk": chunk_sk(n), "members": chunk})}}
        for n, chunk in enumerate(new)]
    old_count = len(chunks(before)) if before else 0
    items += [{"Delete": {"TableName": table, "Key": key(pk, chunk_sk(n))}} for n in range(len(new), old_count)]
    if before:
        items.append({"Delete": {"TableName": table, "Key": key(pk, LEGACY_SK)}})
    return items


def expected_from_items(items: Sequence[dict[str, Any]]) -> list[str] | None:
    """The members a rollout expects, from its partition's items in sort-key order; None if never published."""
    found = [i for i in items if i["sk"] == LEGACY_SK or i["sk"].startswith(PREFIX)]
    if not found:
        return None
    return sorted(member for item in found for member in item.get("members") or ())
