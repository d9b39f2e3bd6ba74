"""A group's line as the ledger reads it: whole, or partially for a step that needs a few tickets.

A partial read (``load_group`` with a Focus) gets, per rollout, its record, the first open
tickets from its low-water mark, and the ticket the focus names (by number, or by instance
through its ``holder#`` item). That is a few small reads whatever the group's size;
``reads.partial_view`` states what it must return.

The group's item is always read first: a decision written after any other conductor's is
refused, so what is read after it can be newer but never older than the version the decision
is conditioned on. A focused read gets the group's item, the named rollout's record and the
items the focus names in one transactional read, a snapshot; for a report, those are the open
window whenever the reported ticket is the one updating, so the step needs one read.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.conductor import Group, Rollout, Ticket, batches
from skynet_tasks.dynamo import from_item
from skynet_tasks.ledger.groups import GroupStore
from skynet_tasks.ledger.reads import OPEN_WINDOW, Focus
from skynet_tasks.ledger.rollouts import RolloutStore, rollout_from_record
from skynet_tasks.ledger.table import ROLLOUT_SK, group_key, holder_sk, key, rollout_pk, ticket_sk
from skynet_tasks.ledger.tickets import OPEN_STATES, TicketStore, ticket_from_item


class _ReadAhead:
    """Items of one rollout read ahead, in the snapshot of its group's item; others are read when asked for."""

    def __init__(self, store: TicketStore, pk: str, items: dict[str, dict[str, Any] | None]) -> None:
        self.store = store
        self.pk = pk
        self.items = items  # by sort key; None: read, and not there

    def get(self, sk: str) -> dict[str, Any] | None:
        if sk in self.items:
            return self.items[sk]
        return self.store.item(self.pk, sk)

    def open_window(self, rollout: Rollout) -> list[Ticket] | None:
        """The rollout's open window if the tickets read ahead make it up; None: query for it.

        They do when every ticket from the low-water mark on (up to the window's size and the
        last ticket issued) was read and waits or updates: then no open ticket comes before them.
        No ticket from the low-water mark on at all makes an empty window.
        """
        numbers = range(rollout.low_water, min(rollout.low_water + batches.window(rollout), rollout.last_number + 1))
        found = [self.items.get(ticket_sk(n)) for n in numbers]
        if any(item is None for item in found):
            return None
        tickets = [ticket_from_item(item) for item in found if item is not None]
        return tickets if all(t.state in OPEN_STATES for t in tickets) else None


class LineStore(GroupStore, RolloutStore, TicketStore):
    """Reads of a group with the rollouts of its line."""

    def load_group(self, group: str, focus: Focus | None = None) -> Group:
        """The group with every rollout in its line, read consistently right now.

        With a ``focus``, each rollout holds only the tickets ``reads.partial_view`` says;
        without one, every ticket.
        """
        if focus is None:
            info = self.group_info(group)
            line = tuple(self.load_rollout(rid) for rid in info.get("line", []))
        else:
            info, ahead = self._read_ahead(group, focus)
            line = tuple(self._load_partially(rid, focus, ahead if rid == focus.rollout_id else None)
                         for rid in info.get("line", []))
        return Group(
            name=group,
            version=int(info.get("version", 0)),
            desired_release=info.get("desired_release"),
            desired_rollout=info.get("desired_rollout"),
            previous_release=info.get("previous_release"),
            line=tuple(r for r in line if r is not None),
        )

    def _read_ahead(self, group: str, focus: Focus) -> tuple[dict[str, Any], _ReadAhead | None]:
        """The group's item and, in the same snapshot, what ``focus`` will need of the rollout it names:
        its record, and the holder items of the instances it names, or the ticket it names and the
        tickets after it (the open window, when that ticket is the one updating)."""
        if focus.rollout_id is None:
            return self.group_info(group), None
        sks = [ROLLOUT_SK]
        if focus.ticket is not None:
            sks += [ticket_sk(n) for n in range(focus.ticket, focus.ticket + OPEN_WINDOW)]
        else:
            sks += [holder_sk(instance) for instance in focus.instances]
        pk = rollout_pk(focus.rollout_id)
        keys = [group_key(group), *(key(pk, sk) for sk in sks)]
        try:
            responses = self.db.transact_get_items(
                TransactItems=[{"Get": {"TableName": self.table, "Key": k}} for k in keys])["Responses"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            # DynamoDB cancels a transactional read that meets a write to one of its items (an
            # instance acknowledging its ticket, another step): read them one by one instead,
            # the group's item first.
            return self.group_info(group), None
        items = [from_item(r["Item"]) if r.get("Item") else None for r in responses]
        return items[0] or {}, _ReadAhead(self, pk, dict(zip(sks, items[1:], strict=True)))

    def _load_partially(self, rollout_id: str, focus: Focus, ahead: _ReadAhead | None) -> Rollout | None:
        """The rollout's record, its open window and the ticket ``focus`` names (see ``reads.partial_view``).

        ``ahead`` holds items of the rollout already read with the group's item; the rest is read here.
        """
        items = ahead or _ReadAhead(self, rollout_pk(rollout_id), {})
        header = items.get(ROLLOUT_SK)
        if header is None or "release" not in header:
            return None
        rollout = rollout_from_record(rollout_id, header, ())
        window = items.open_window(rollout)
        if window is None:
            window = self.open_tickets(rollout_id, rollout.low_water, batches.window(rollout))
        tickets = {t.number: t for t in window}
        if focus.rollout_id in (None, rollout_id):
            numbers = [focus.ticket] if focus.ticket is not None else []
            for instance in () if focus.ticket is not None else focus.instances:
                holder = items.get(holder_sk(instance))
                if holder:
                    numbers.append(int(holder["number"]))
            for number in numbers:
                if number not in tickets:
                    item = items.get(ticket_sk(number))
                    if item is not None:
                        tickets[number] = ticket_from_item(item)
        return replace(rollout, tickets=tuple(tickets[n] for n in sorted(tickets)))
