"""Writing a conductor decision: the only place rollout and ticket states are written.

Every decision is written in one transaction conditioned on the group's ``version``: two
conductors deciding on the same state (a redelivered or duplicated maintenance message)
cannot both win, so two instances of a group can never be put into ``updating`` at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.conductor import Decision, Group, Rollout, Ticket
from skynet_tasks.conductor.revert import needs_person
from skynet_tasks.dynamo import lost_to_another_write, to_item
from skynet_tasks.ledger import expressions
from skynet_tasks.ledger.counters import counters_update, increments
from skynet_tasks.ledger.expected import expected_writes
from skynet_tasks.ledger.rollouts import ROLLOUT_FIELDS
from skynet_tasks.ledger.table import ROLLOUT_SK, Store, group_key, holder_sk, key, rollout_pk, ticket_sk

log = logging.getLogger(__name__)

_TRANSACTION_LIMIT = 100


class Conflict(Exception):
    """Another writer changed the group first: re-read and decide again."""


class DecisionWriter(Store):
    """Writes what the conductor decided, if nobody decided first."""

    def write_decision(self, before: Group, decision: Decision) -> None:
        """Persist a decision atomically, if the group is still at ``before.version``; else raise Conflict."""
        after = decision.group
        old = {r.id: r for r in before.line}
        group_values: dict[str, Any] = {"version": before.version + 1, "line": [r.id for r in after.line],
                                        "updated_at": time.time()}
        if group_values["line"] == [r.id for r in before.line]:
            del group_values["line"]  # (each attribute an update names costs moto time on the hand-off's path)
        for name in ("desired_release", "desired_rollout", "previous_release"):
            if getattr(after, name) is not None and getattr(after, name) != getattr(before, name):
                group_values[name] = getattr(after, name)
        if before.version:
            condition, current = "#version = :current", {":current": before.version}
        else:
            condition, current = "attribute_not_exists(#version) OR #version = :current", {":current": 0}
        items: list[dict[str, Any]] = [{"Update": expressions.update(
            self.table, group_key(before.name), group_values, condition=condition, names={"#version": "version"},
            condition_values=current)}]
        tickets: list[dict[str, Any]] = []
        for rollout in decision.touched:
            before_rollout = old.get(rollout.id)
            header = self._rollout_update(rollout, before_rollout)
            if header is not None:
                items.append({"Update": header})
            if before_rollout is None and rollout.revert_of is not None:
                # A revert starts in the conductor, not from a build: its index item for the group's
                # history (``create_rollout`` writes the others') is written with it.
                items.append({"Put": {"TableName": self.table, "Item": to_item({
                    "pk": f"group#{before.name}", "sk": f"rollout#{rollout.created_at:017.6f}#{rollout.id}",
                    "rollout_id": rollout.id})}})
            was_expected = before_rollout.expected if before_rollout else ()
            if rollout.expected != was_expected:  # in this transaction: never published without its members
                items += expected_writes(self.table, rollout.id, was_expected, rollout.expected)
            previous = {t.number: t for t in before_rollout.tickets} if before_rollout else {}
            issued = before_rollout.last_number if before_rollout else 0
            for ticket in rollout.tickets:
                if previous.get(ticket.number) != ticket:
                    tickets.append({"Update": self._ticket_update(rollout.id, ticket, previous.get(ticket.number))})
                if ticket.number > issued:  # a new ticket: index its holder
                    tickets.append({"Put": {"TableName": self.table, "Item": to_item({
                        "pk": rollout_pk(rollout.id), "sk": holder_sk(ticket.instance), "number": ticket.number})}})
        # The metrics' counters ride in the decision's transaction: added once per decision written (ledger.counters).
        added = increments(before, decision)
        if added:
            items.append({"Update": counters_update(self.table, before.name, added)})
        # ``items`` stay well under the limit: the expected members are at most ``expected.MAX_SET_BYTES``
        # (32 chunks), and a decision touches a few rollouts.
        room = _TRANSACTION_LIMIT - len(items)
        try:
            self.db.transact_write_items(TransactItems=items + tickets[:room])
        except ClientError as error:
            if lost_to_another_write(error):
                raise Conflict(f"group {before.name} changed since version {before.version}") from error
            raise
        # Only bulk endings (cancelled or superseded waiting tickets of a rollout that
        # left the line) can overflow one transaction; nothing reads them to decide.
        for start in range(room, len(tickets), _TRANSACTION_LIMIT):
            self.db.transact_write_items(TransactItems=tickets[start:start + _TRANSACTION_LIMIT])
        for note in decision.notes:
            log.info("group %s: %s", before.name, note)
        for rollout in decision.touched:
            was = old.get(rollout.id)
            if needs_person(rollout) and (was is None or not needs_person(was)):
                log.error("group %s: rollout %s, the revert of %s, halted and needs a person: %s", before.name,
                          rollout.id, rollout.revert_of, rollout.reason)

    def _rollout_update(self, rollout: Rollout, before: Rollout | None) -> dict[str, Any] | None:
        """Set the fields of the rollout's record that changed (all of them for a rollout new to the line)."""
        changed = [k for k in ROLLOUT_FIELDS if before is None or getattr(before, k) != getattr(rollout, k)]
        if not changed:
            return None
        values: dict[str, Any] = {k: getattr(rollout, k) for k in changed}
        if before is None and rollout.revert_of is not None:
            values["source"] = f"automatic revert of {rollout.revert_of}"
        for name in ("state", "kind"):
            if name in values:
                values[name] = str(values[name])
        return expressions.fields(self.table, key(rollout_pk(rollout.id), ROLLOUT_SK), values)

    def _ticket_update(self, rollout_id: str, ticket: Ticket, before: Ticket | None) -> dict[str, Any]:
        """Set the conductor's fields of a ticket that changed since ``before`` (all of them for a new ticket),
        leaving the others and the instance's annotations (log key…) alone.

        Only what changed: the instance writes one of the conductor's fields too (``acknowledged_at``,
        when it starts its update), and a step that did not change it must not put back what it read.
        It also keeps the hand-off's write small (moto's time grows with the attributes it names).
        """
        now, was = asdict(ticket), asdict(before) if before is not None else {}
        values = {k: v for k, v in now.items() if before is None or was[k] != v}
        if "state" in values:
            values["state"] = str(ticket.state)
        return expressions.fields(self.table, key(rollout_pk(rollout_id), ticket_sk(ticket.number)), values)
