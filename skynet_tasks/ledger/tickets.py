"""Tickets: an instance's place in a rollout's line, as the instance itself touches it.

Their states are the conductor's to write (``skynet_tasks.ledger.decisions``); an instance
only acknowledges its turn and annotates its ticket.
"""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.conductor import Ticket
from skynet_tasks.dynamo import condition_failed, from_item
from skynet_tasks.ledger import expressions
from skynet_tasks.ledger.table import LAST_TICKET_SK, Store, holder_sk, key, rollout_pk, ticket_sk
from skynet_tasks.states import TicketState

TICKET_FIELDS = ("number", "instance", "state", "taken_at", "started_at", "finished_at", "deadline",
                 "error", "acknowledged_at", "attempts", "handed_at")
# The ticket states of a rollout's open window (``skynet_tasks.ledger.reads``).
OPEN_STATES = (TicketState.WAITING, TicketState.UPDATING)


def ticket_from_item(item: dict[str, Any]) -> Ticket:
    """The conductor's ticket from its item (the instance's annotations are left out)."""
    values: dict[str, Any] = {k: v for k, v in item.items() if k in TICKET_FIELDS}
    values["state"] = TicketState(values["state"])
    return Ticket(**values)


class TicketStore(Store):
    """What an instance does to its ticket, and the reads of tickets by number."""

    def acknowledge_ticket(self, rollout_id: str, number: int, instance: str) -> int | None:
        """The instance starts ticket ``number``; return the attempt it runs, or None if it is not its to run.

        Refused when the ticket is no longer updating on this instance, when this
        attempt was already reported (a duplicate update message that arrives after
        the update finished, a redispatch, a redelivery, must not run it again), and
        once the ticket's deadline has passed (a message that waited too long: the
        conductor fails the ticket, and counts on an update started before its
        deadline to stop within the task's time limit). A redelivery after a crash,
        before any report, does run it again.
        """
        now = time.time()
        request = expressions.update(
            self.table, key(rollout_pk(rollout_id), ticket_sk(number)), {"acknowledged_at": now},
            condition="#state = :updating AND instance = :me AND "
                      "(attribute_not_exists(reported_attempt) OR reported_attempt < attempts) AND "
                      "(attribute_not_exists(deadline) OR deadline > :now)",
            names={"#state": "state"}, condition_values={":now": now, ":updating": "updating", ":me": instance})
        try:
            response = self.update_item(**request, ReturnValues="ALL_NEW")
        except ClientError as error:
            if condition_failed(error):
                return None
            raise
        return int(from_item(response["Attributes"]).get("attempts", 1))

    def holds_ticket(self, rollout_id: str, instance: str) -> bool:
        """Whether ``instance`` holds a ticket in the rollout (its holder item, written with the ticket)."""
        return self.item(rollout_pk(rollout_id), holder_sk(instance)) is not None

    def ticket(self, rollout_id: str, number: int) -> dict[str, Any] | None:
        """Everything stored about ticket ``number`` of the rollout, annotations included."""
        return self.item(rollout_pk(rollout_id), ticket_sk(number))

    def annotate_ticket(self, rollout_id: str, number: int, attributes: dict[str, Any]) -> None:
        """Add descriptive attributes (log key, timings) to a ticket, never its state."""
        self.update_item(**self.annotation_update(rollout_id, number, attributes))

    def annotation_update(self, rollout_id: str, number: int, attributes: dict[str, Any]) -> dict[str, Any]:
        """The UpdateItem (alone, or a transaction's ``Update``) that annotates an existing ticket."""
        if "state" in attributes:
            raise ValueError("annotate_ticket cannot change a state; the conductor does")
        return expressions.update(self.table, key(rollout_pk(rollout_id), ticket_sk(number)), attributes,
                                  condition="attribute_exists(pk)")

    def open_tickets(self, rollout_id: str, low_water: int, count: int) -> list[Ticket]:
        """The first ``count`` tickets from ``low_water`` that wait or update, in number order."""
        # Deliberately bounded: pages of a few tickets from the low water mark, read only until ``count``
        # open ones are found (the filter may skip done tickets, so a page can hold fewer than its size).
        pages = self.db.get_paginator("query").paginate(
            TableName=self.table, ConsistentRead=True, KeyConditionExpression="pk = :pk AND sk BETWEEN :low AND :high",
            FilterExpression="#state IN (:waiting, :updating)", ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":pk": {"S": rollout_pk(rollout_id)}, ":low": {"S": ticket_sk(low_water)},
                                       ":high": {"S": LAST_TICKET_SK}, ":waiting": {"S": "waiting"},
                                       ":updating": {"S": "updating"}},
            PaginationConfig={"PageSize": count + 2, "MaxItems": count})
        return [ticket_from_item(from_item(i)) for page in pages for i in page.get("Items", [])]
