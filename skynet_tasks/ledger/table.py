"""The state table's layout: the key of every item, and the plain reads every store shares.

=========================  ==========================  =======================================
pk                         sk                          what
=========================  ==========================  =======================================
``group#<group>``          ``group``                   version, desired release, the line
``group#<group>``          ``rollout#<created>#<id>``  index of the group's rollouts, newest last
``rollout#<id>``           ``rollout``                 the rollout
``rollout#<id>``           ``ticket#<number>``         its tickets
``rollout#<id>``           ``holder#<instance>``       which ticket an instance holds
``rollout#<id>``           ``expected#<chunk>``        the members expected to update, once published
``release#<group>``        ``<sha>``                   a build of that commit for that group
``audit#<group>``          ``<at>#<nonce>``            an operator action
=========================  ==========================  =======================================

Each rollout is readable in one query (its ``pk``).
"""

from __future__ import annotations

from typing import Any

from skynet_tasks.dynamo import TRANSACTION_CONFLICT_ATTEMPTS, again_on_transaction_conflict, from_item

ROLLOUT_SK = "rollout"
# The members a published rollout expects, one per instance of the group, live in items of their
# own (``expected``: chunks, none growing with the group): kept in the rollout's record, they made
# every conductor step read and copy a list as long as the group (79 ms per ticket at 1,000
# members). Only a step that reads every ticket needs them.


def key(pk: str, sk: str) -> dict[str, Any]:
    """The DynamoDB key of the item (pk, sk)."""
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def group_key(group: str) -> dict[str, Any]:
    """The key of a group's item."""
    return key(f"group#{group}", "group")


def rollout_pk(rollout_id: str) -> str:
    """The partition of a rollout: its record, tickets, holders and expected members."""
    return f"rollout#{rollout_id}"


def ticket_sk(number: int) -> str:
    """The sort key of ticket ``number`` (zero-padded, so that tickets sort by number)."""
    return f"ticket#{number:06d}"


def holder_sk(instance: str) -> str:
    """The sort key of the item naming the ticket ``instance`` holds."""
    return f"holder#{instance}"


LAST_TICKET_SK = ticket_sk(999_999)


class Store:
    """A view of the state table of one env; each noun's store is one of these."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.db = dynamodb
        self.table = table

    def update_item(self, **request: Any) -> dict[str, Any]:
        """Send one UpdateItem, again while a conductor's transaction holds the item.

        A single write that meets a transaction in progress on its item is refused with
        ``TransactionConflictException`` on DynamoDB (nothing written, nothing refused):
        an instance acknowledging its ticket while a step writes that ticket's rollout must
        not read that as "not yours to run". Its condition is evaluated again each time.
        """
        return again_on_transaction_conflict(self.db.update_item, TRANSACTION_CONFLICT_ATTEMPTS, **request)

    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        """The item (pk, sk), read consistently; None if it is not there."""
        found = self.db.get_item(TableName=self.table, ConsistentRead=True, Key=key(pk, sk)).get("Item")
        return from_item(found) if found else None

    def query_all(self, pk: str) -> list[dict[str, Any]]:
        """Every item of partition ``pk``, read consistently, in sort-key order."""
        pages = self.db.get_paginator("query").paginate(
            TableName=self.table, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": {"S": pk}},
            ConsistentRead=True)
        return [from_item(i) for page in pages for i in page.get("Items", [])]
