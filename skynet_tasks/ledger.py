"""The state table: groups, rollouts, tickets and releases in DynamoDB.

This is the only module that writes rollout, ticket and release states. The
layout keeps each rollout readable in one query:

=========================  ==========================  =======================================
pk                         sk                          what
=========================  ==========================  =======================================
``group#<group>``          ``group``                   version, desired release, the line
``group#<group>``          ``rollout#<created>#<id>``  index of the group's rollouts, newest last
``rollout#<id>``           ``rollout``                 the rollout
``rollout#<id>``           ``ticket#<number>``         its tickets
``rollout#<id>``           ``holder#<instance>``       which ticket an instance holds
``rollout#<id>``           ``expected``                the members expected to update, once published
``release#<group>``        ``<sha>``                   a build of that commit for that group
=========================  ==========================  =======================================

Every conductor decision is written in one transaction conditioned on the
group's ``version``: two conductors deciding on the same state (a redelivered
or duplicated maintenance message) cannot both win, so two instances of a
group can never be put into ``updating`` at once.

A conductor step reads a partial line (``load_group`` with a Focus): per rollout,
its record, the first open tickets from its low-water mark, and the ticket the
event names (by number, or by instance through its ``holder#`` item). That is a
few small reads whatever the group's size; ``conductor.partial_view`` states what
it must return, and a rule that needs more asks for the whole line.

The group's item is always read first: a decision written after any other
conductor's is refused, so what is read after it can be newer but never
older than the version the decision is conditioned on. A focused step reads
the group's item, the named rollout's record and the items the event names in
one transactional read, a snapshot; for a report, those are the open window
whenever the reported ticket is the one updating, so the step needs one read.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.conductor import OPEN_STATES, OPEN_WINDOW, Decision, Focus, Group, Rollout, Ticket
from skynet_tasks.dynamo import condition_failed, from_item, to_attr, to_item
from skynet_tasks.states import ReleaseState, RolloutKind, RolloutState, TicketState

log = logging.getLogger(__name__)

_TRANSACTION_LIMIT = 100
AUDIT_RETENTION = 400 * 86400  # seconds an operator action stays in the audit trail


class Conflict(Exception):
    """Another writer changed the group first: re-read and decide again."""


def _group_key(group: str) -> dict[str, Any]:
    return {"pk": {"S": f"group#{group}"}, "sk": {"S": "group"}}


def _rollout_pk(rollout_id: str) -> str:
    return f"rollout#{rollout_id}"


def _ticket_sk(number: int) -> str:
    return f"ticket#{number:06d}"


def _holder_sk(instance: str) -> str:
    return f"holder#{instance}"


_LAST_TICKET_SK = _ticket_sk(999_999)


_TICKET_FIELDS = ("number", "instance", "state", "taken_at", "started_at", "finished_at", "deadline",
                  "error", "acknowledged_at", "attempts")
_ROLLOUT_DYNAMIC = ("state", "canary", "published", "update_timeout", "reason", "finished_at",
                    "superseded_by", "created_at", "release", "kind", "group", "last_number", "low_water",
                    "held_by", "held_until")
# Set on rollouts whose every ticket has a holder item: only those are read partially.
_INDEXED = "holders_indexed"
# The members a published rollout expects, one per instance of the group, live in an item of their
# own: kept in the rollout's record, they made every conductor step read and copy a list as long as
# the group (79 ms per ticket at 1,000 members). Only a step that reads every ticket needs them.
_EXPECTED_SK = "expected"


def _expected_members(items: list[dict[str, Any]], header: dict[str, Any]) -> list[str] | None:
    """The members a rollout expects, from its items (or its record, where rollouts before the
    ``expected`` item kept them); None if it was never published."""
    found = next((i["members"] for i in items if i["sk"] == _EXPECTED_SK), header.get("expected"))
    return list(found) if found is not None else None


def _ticket_from_item(item: dict[str, Any]) -> Ticket:
    values: dict[str, Any] = {k: v for k, v in item.items() if k in _TICKET_FIELDS}
    values["state"] = TicketState(values["state"])
    return Ticket(**values)


@dataclass(frozen=True)
class Release:
    """One build of one commit for one group."""

    group: str
    sha: str
    state: ReleaseState
    repo: str = ""
    branch: str = ""
    builder: str = ""
    started_at: float = 0.0
    finished_at: float | None = None
    lease_until: float = 0.0
    artifact_key: str | None = None
    manifest_key: str | None = None
    log_key: str | None = None
    sha256: str | None = None
    size: int | None = None
    error: str | None = None
    author: str | None = None
    message: str | None = None
    update_timeout: float | None = None


class _ReadAhead:
    """Items of one rollout read ahead, in the snapshot of its group's item; others are read when asked for."""

    def __init__(self, ledger: Ledger, pk: str, items: dict[str, dict[str, Any] | None]) -> None:
        self.ledger = ledger
        self.pk = pk
        self.items = items  # by sort key; None: read, and not there

    def get(self, sk: str) -> dict[str, Any] | None:
        if sk in self.items:
            return self.items[sk]
        return self.ledger.item(self.pk, sk)

    def open_window(self, rollout: Rollout) -> list[Ticket] | None:
        """The rollout's open window if the tickets read ahead make it up; None: query for it.

        They do when every ticket from the low-water mark on (up to the window's size and the
        last ticket issued) was read and waits or updates: then no open ticket comes before them.
        No ticket from the low-water mark on at all makes an empty window.
        """
        numbers = range(rollout.low_water, min(rollout.low_water + OPEN_WINDOW, rollout.last_number + 1))
        found = [self.items.get(_ticket_sk(n)) for n in numbers]
        if any(item is None for item in found):
            return None
        tickets = [_ticket_from_item(item) for item in found if item is not None]
        return tickets if all(t.state in OPEN_STATES for t in tickets) else None


class Ledger:
    """Reads and writes the state table of one env."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.db = dynamodb
        self.table = table

    # ---- groups -------------------------------------------------------------
    def ensure_group(self, group: str, repo: str, branch: str) -> None:
        """Create the group's item if missing, and record what it deploys when known."""
        names = {"#v": "version"}
        values: dict[str, Any] = {":zero": to_attr(0)}
        sets = ["#v = if_not_exists(#v, :zero)"]
        if repo:
            sets += ["repo = if_not_exists(repo, :repo)", "branch = if_not_exists(branch, :branch)"]
            values |= {":repo": to_attr(repo), ":branch": to_attr(branch)}
        self.db.update_item(TableName=self.table, Key=_group_key(group), UpdateExpression="SET " + ", ".join(sets),
                            ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    def group_info(self, group: str) -> dict[str, Any]:
        item = self.db.get_item(TableName=self.table, Key=_group_key(group), ConsistentRead=True).get("Item")
        return from_item(item) if item else {}

    def list_groups(self) -> list[str]:
        groups = []
        paginator = self.db.get_paginator("scan")
        for page in paginator.paginate(TableName=self.table, FilterExpression="sk = :g",
                                       ExpressionAttributeValues={":g": {"S": "group"}},
                                       ProjectionExpression="pk"):
            groups += [item["pk"]["S"].split("#", 1)[1] for item in page.get("Items", [])]
        return sorted(groups)

    def load_group(self, group: str, focus: Focus | None = None) -> Group:
        """The group with every rollout in its line, read consistently right now.

        With a ``focus``, each rollout holds only the tickets ``conductor.partial_view``
        says (and is marked partial); without one, every ticket.
        """
        if focus is None:
            info = self.group_info(group)
            line = tuple(self.load_rollout(rid) for rid in info.get("line", []))
        else:
            info, ahead = self._read_ahead(group, focus)
            line = tuple(self.load_rollout_partially(rid, focus, ahead if rid == focus.rollout_id else None)
                         for rid in info.get("line", []))
        return Group(
            name=group,
            version=int(info.get("version", 0)),
            desired_release=info.get("desired_release"),
            desired_rollout=info.get("desired_rollout"),
            previous_release=info.get("previous_release"),
            line=tuple(r for r in line if r is not None),
        )

    # ---- rollouts -----------------------------------------------------------
    def rollout_item(self, rollout_id: str) -> dict[str, Any] | None:
        return self.item(_rollout_pk(rollout_id), "rollout")

    def load_rollout(self, rollout_id: str) -> Rollout | None:
        items = self._query_all(_rollout_pk(rollout_id))
        header = next((i for i in items if i["sk"] == "rollout"), None)
        if header is None or "release" not in header:
            return None
        tickets = tuple(_ticket_from_item(i) for i in items if i["sk"].startswith("ticket#"))
        expected = tuple(_expected_members(items, header) or ())
        return replace(self._rollout(rollout_id, header, tickets), expected=expected)

    def _read_ahead(self, group: str, focus: Focus) -> tuple[dict[str, Any], _ReadAhead | None]:
        """The group's item and, in the same snapshot, what ``focus`` will need of the rollout it names:
        its record, and the holder item of the instance it names, or the ticket it names and the
        tickets after it (the open window, when that ticket is the one updating)."""
        if focus.rollout_id is None:
            return self.group_info(group), None
        sks = ["rollout"]
        if focus.ticket is not None:
            sks += [_ticket_sk(n) for n in range(focus.ticket, focus.ticket + OPEN_WINDOW)]
        elif focus.instance is not None:
            sks.append(_holder_sk(focus.instance))
        pk = _rollout_pk(focus.rollout_id)
        keys = [_group_key(group), *({"pk": {"S": pk}, "sk": {"S": sk}} for sk in sks)]
        try:
            responses = self.db.transact_get_items(
                TransactItems=[{"Get": {"TableName": self.table, "Key": key}} for key in keys])["Responses"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            # DynamoDB cancels a transactional read that meets a write to one of its items (an
            # instance acknowledging its ticket, another step): read them one by one instead,
            # the group's item first.
            return self.group_info(group), None
        items = [from_item(r["Item"]) if r.get("Item") else None for r in responses]
        return items[0] or {}, _ReadAhead(self, pk, dict(zip(sks, items[1:], strict=True)))

    def load_rollout_partially(self, rollout_id: str, focus: Focus, ahead: _ReadAhead | None = None) -> Rollout | None:
        """The rollout's record, its open window and the ticket ``focus`` names (see ``conductor.partial_view``).

        ``ahead`` holds items of the rollout already read with the group's item; the rest is read here.
        """
        items = ahead or _ReadAhead(self, _rollout_pk(rollout_id), {})
        header = items.get("rollout")
        if header is None or "release" not in header:
            return None
        if not header.get(_INDEXED):
            return self.load_rollout(rollout_id)  # recorded before holders were indexed: read it whole
        rollout = self._rollout(rollout_id, header, ())
        window = items.open_window(rollout)
        if window is None:
            window = self._open_window(rollout_id, rollout.low_water)
        tickets = {t.number: t for t in window}
        if focus.rollout_id in (None, rollout_id):
            number = focus.ticket
            if number is None and focus.instance is not None:
                holder = items.get(_holder_sk(focus.instance))
                number = int(holder["number"]) if holder else None
            if number is not None and number not in tickets:
                item = items.get(_ticket_sk(number))
                if item is not None:
                    tickets[number] = _ticket_from_item(item)
        return replace(rollout, tickets=tuple(tickets[n] for n in sorted(tickets)), partial=True)

    def _open_window(self, rollout_id: str, low_water: int) -> list[Ticket]:
        """The first OPEN_WINDOW tickets from ``low_water`` that wait or update, in number order."""
        kwargs: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True, "Limit": OPEN_WINDOW + 2,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :low AND :high",
            "FilterExpression": "#state IN (:waiting, :updating)", "ExpressionAttributeNames": {"#state": "state"},
            "ExpressionAttributeValues": {":pk": {"S": _rollout_pk(rollout_id)}, ":low": {"S": _ticket_sk(low_water)},
                                          ":high": {"S": _LAST_TICKET_SK}, ":waiting": to_attr("waiting"),
                                          ":updating": to_attr("updating")},
        }
        found: list[Ticket] = []
        while len(found) < OPEN_WINDOW:
            resp = self.db.query(**kwargs)
            found += [_ticket_from_item(from_item(i)) for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                break
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
        return found[:OPEN_WINDOW]

    @staticmethod
    def _rollout(rollout_id: str, header: dict[str, Any], tickets: tuple[Ticket, ...]) -> Rollout:
        return Rollout(
            id=rollout_id,
            group=header["group"],
            release=header["release"],
            kind=RolloutKind(header.get("kind", RolloutKind.CODE)),
            state=RolloutState(header["state"]),
            created_at=header.get("created_at", 0.0),
            canary=header.get("canary"),
            published=bool(header.get("published", False)),
            tickets=tickets,
            update_timeout=float(header.get("update_timeout", 300.0)),
            reason=header.get("reason"),
            finished_at=header.get("finished_at"),
            superseded_by=header.get("superseded_by"),
            held_by=int(header["held_by"]) if header.get("held_by") is not None else None,
            held_until=header.get("held_until"),
            last_number=max([int(header.get("last_number", 0)), *(t.number for t in tickets)]),
            low_water=int(header.get("low_water", 1)),
        )

    def rollout_view(self, rollout_id: str) -> dict[str, Any] | None:
        """Everything stored about a rollout (header attributes and tickets), for status and the dashboard."""
        items = self._query_all(_rollout_pk(rollout_id))
        header = next((i for i in items if i["sk"] == "rollout"), None)
        if header is None:
            return None
        view = {k: v for k, v in header.items() if k not in ("pk", "sk", "expected")}
        view["id"] = rollout_id
        view["tickets"] = [
            {k: v for k, v in i.items() if k not in ("pk", "sk")} for i in items if i["sk"].startswith("ticket#")
        ]
        expected = _expected_members(items, header)
        if expected is not None:
            view["expected"] = expected
        return view

    def recent_rollouts(self, group: str, limit: int = 10) -> list[str]:
        resp = self.db.query(
            TableName=self.table, KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues={":pk": {"S": f"group#{group}"}, ":p": {"S": "rollout#"}},
            ScanIndexForward=False, Limit=limit, ConsistentRead=True,
        )
        return [from_item(i)["rollout_id"] for i in resp.get("Items", [])][::-1]

    def create_rollout(self, rollout_id: str, group: str, release: str, kind: RolloutKind,
                       attributes: dict[str, Any]) -> bool:
        """Record a new rollout in ``building`` state; False if it exists already (a redelivery)."""
        now = time.time()
        item = to_item({"pk": _rollout_pk(rollout_id), "sk": "rollout", "group": group, "release": release,
                        "kind": str(kind), "state": str(RolloutState.BUILDING), "created_at": now, **attributes})
        index = to_item({"pk": f"group#{group}", "sk": f"rollout#{now:017.6f}#{rollout_id}",
                         "rollout_id": rollout_id})
        try:
            self.db.transact_write_items(TransactItems=[
                {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(pk)"}},
                {"Put": {"TableName": self.table, "Item": index}},
            ])
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def fail_build(self, rollout_id: str, reason: str) -> None:
        """A rollout whose build failed never joins its group's line."""
        self._update_rollout_header(rollout_id, {"state": str(RolloutState.BUILD_FAILED), "reason": reason,
                                                 "finished_at": time.time()},
                                    condition=("#state = :building", {":building": str(RolloutState.BUILDING)}))

    def annotate_rollout(self, rollout_id: str, attributes: dict[str, Any]) -> None:
        """Add descriptive attributes (never the state) to a rollout: release details, timings."""
        if "state" in attributes:
            raise ValueError("annotate_rollout cannot change a state; the conductor does")
        self._update_rollout_header(rollout_id, attributes)

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
        try:
            response = self.db.update_item(
                TableName=self.table,
                Key={"pk": {"S": _rollout_pk(rollout_id)}, "sk": {"S": _ticket_sk(number)}},
                UpdateExpression="SET acknowledged_at = :now",
                ConditionExpression="#state = :updating AND instance = :me AND "
                                    "(attribute_not_exists(reported_attempt) OR reported_attempt < attempts) AND "
                                    "(attribute_not_exists(deadline) OR deadline > :now)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={":now": to_attr(time.time()), ":updating": to_attr("updating"),
                                           ":me": to_attr(instance)},
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if condition_failed(error):
                return None
            raise
        return int(from_item(response["Attributes"]).get("attempts", 1))

    def ticket(self, rollout_id: str, number: int) -> dict[str, Any] | None:
        return self.item(_rollout_pk(rollout_id), _ticket_sk(number))

    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        item = self.db.get_item(TableName=self.table, ConsistentRead=True,
                                Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
        return from_item(item) if item else None

    def annotate_ticket(self, rollout_id: str, number: int, attributes: dict[str, Any]) -> None:
        """Add descriptive attributes (log key, timings) to a ticket, never its state."""
        if "state" in attributes:
            raise ValueError("annotate_ticket cannot change a state; the conductor does")
        sets = ", ".join(f"#a{i} = :a{i}" for i in range(len(attributes)))
        self.db.update_item(
            TableName=self.table, Key={"pk": {"S": _rollout_pk(rollout_id)}, "sk": {"S": _ticket_sk(number)}},
            UpdateExpression=f"SET {sets}", ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={f"#a{i}": k for i, k in enumerate(attributes)},
            ExpressionAttributeValues={f":a{i}": to_attr(v) for i, v in enumerate(attributes.values())},
        )

    # ---- decisions ----------------------------------------------------------
    def write_decision(self, before: Group, decision: Decision) -> None:
        """Persist a decision atomically, if the group is still at ``before.version``; else raise Conflict."""
        after = decision.group
        old = {r.id: r for r in before.line}
        group_values = {
            ":next": to_attr(before.version + 1),
            ":line": to_attr([r.id for r in after.line]),
            ":now": to_attr(time.time()),
        }
        sets = ["#v = :next", "line = :line", "updated_at = :now"]
        for name in ("desired_release", "desired_rollout", "previous_release"):
            value = getattr(after, name)
            if value is not None:
                sets.append(f"{name} = :{name}")
                group_values[f":{name}"] = to_attr(value)
        if before.version:
            condition = "#v = :current"
            group_values[":current"] = to_attr(before.version)
        else:
            condition = "attribute_not_exists(#v) OR #v = :zero"
            group_values[":zero"] = to_attr(0)
        items: list[dict[str, Any]] = [{"Update": {
            "TableName": self.table, "Key": _group_key(before.name), "UpdateExpression": "SET " + ", ".join(sets),
            "ConditionExpression": condition, "ExpressionAttributeNames": {"#v": "version"},
            "ExpressionAttributeValues": group_values,
        }}]
        tickets: list[dict[str, Any]] = []
        for rollout in decision.touched:
            before_rollout = old.get(rollout.id)
            header = self._rollout_update(rollout, before_rollout)
            if header is not None:
                items.append({"Update": header})
            if rollout.expected != (before_rollout.expected if before_rollout else ()):
                items.append({"Put": {"TableName": self.table, "Item": to_item({
                    "pk": _rollout_pk(rollout.id), "sk": _EXPECTED_SK, "members": list(rollout.expected)})}})
            previous = {t.number: t for t in before_rollout.tickets} if before_rollout else {}
            issued = before_rollout.last_number if before_rollout else 0
            for ticket in rollout.tickets:
                if previous.get(ticket.number) != ticket:
                    tickets.append({"Update": self._ticket_update(rollout.id, ticket)})
                if ticket.number > issued:  # a new ticket: index its holder
                    tickets.append({"Put": {"TableName": self.table, "Item": to_item({
                        "pk": _rollout_pk(rollout.id), "sk": _holder_sk(ticket.instance), "number": ticket.number})}})
        room = _TRANSACTION_LIMIT - len(items)
        try:
            self.db.transact_write_items(TransactItems=items + tickets[:room])
        except ClientError as error:
            if condition_failed(error):
                raise Conflict(f"group {before.name} changed since version {before.version}") from error
            raise
        # Only bulk endings (cancelled or superseded waiting tickets of a rollout that
        # left the line) can overflow one transaction; nothing reads them to decide.
        for start in range(room, len(tickets), _TRANSACTION_LIMIT):
            self.db.transact_write_items(TransactItems=tickets[start:start + _TRANSACTION_LIMIT])
        for note in decision.notes:
            log.info("group %s: %s", before.name, note)

    def _rollout_update(self, rollout: Rollout, before: Rollout | None) -> dict[str, Any] | None:
        """Set the fields of the rollout's record that changed (all of them for a rollout new to the line)."""
        changed = [k for k in _ROLLOUT_DYNAMIC if before is None or getattr(before, k) != getattr(rollout, k)]
        if not changed:
            return None
        values: dict[str, Any] = {k: getattr(rollout, k) for k in changed}
        for name in ("state", "kind"):
            if name in values:
                values[name] = str(values[name])
        if before is None:
            values[_INDEXED] = True  # its tickets are created from here on, each with its holder item
        return self._field_update({"pk": {"S": _rollout_pk(rollout.id)}, "sk": {"S": "rollout"}}, values)

    def _ticket_update(self, rollout_id: str, ticket: Ticket) -> dict[str, Any]:
        """Set the conductor's fields of a ticket, leaving the instance's annotations (log key…) alone."""
        values = asdict(ticket)
        values["state"] = str(ticket.state)
        return self._field_update({"pk": {"S": _rollout_pk(rollout_id)}, "sk": {"S": _ticket_sk(ticket.number)}},
                                  values)

    def _field_update(self, key: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        present = {k: v for k, v in values.items() if v is not None}
        absent = [k for k, v in values.items() if v is None]
        names = {f"#a{i}": k for i, k in enumerate([*present, *absent])}
        expression = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(present)))
        if absent:
            expression += " REMOVE " + ", ".join(f"#a{len(present) + i}" for i in range(len(absent)))
        return {"TableName": self.table, "Key": key, "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {f":a{i}": to_attr(v) for i, v in enumerate(present.values())}}

    def _update_rollout_header(self, rollout_id: str, attributes: dict[str, Any],
                               condition: tuple[str, dict[str, Any]] | None = None) -> None:
        names = {f"#a{i}": k for i, k in enumerate(attributes)}
        values = {f":a{i}": to_attr(v) for i, v in enumerate(attributes.values())}
        expression = "attribute_exists(pk)"
        if condition:
            expression += " AND " + condition[0]
            names["#state"] = "state"
            values |= {k: to_attr(v) for k, v in condition[1].items()}
        self.db.update_item(
            TableName=self.table, Key={"pk": {"S": _rollout_pk(rollout_id)}, "sk": {"S": "rollout"}},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attributes))),
            ConditionExpression=expression, ExpressionAttributeNames=names, ExpressionAttributeValues=values,
        )

    # ---- releases -----------------------------------------------------------
    def claim_build(self, release: Release, lease: float) -> Release | None:
        """Become the builder of ``release``; None if another instance built it or holds a live lease."""
        now = time.time()
        item = to_item({"pk": f"release#{release.group}", "sk": release.sha,
                        **{k: (str(v) if k == "state" else v) for k, v in asdict(release).items()},
                        "lease_until": now + lease})
        try:
            self.db.put_item(
                TableName=self.table, Item=item,
                ConditionExpression=("attribute_not_exists(pk) OR #s = :failed"
                                     " OR (#s = :building AND lease_until < :now)"),
                ExpressionAttributeNames={"#s": "state"},
                ExpressionAttributeValues={":failed": to_attr("failed"), ":building": to_attr("building"),
                                           ":now": to_attr(now)},
            )
        except ClientError as error:
            if condition_failed(error):
                return None
            raise
        return release

    def finish_build(self, group: str, sha: str, builder: str, state: ReleaseState, attributes: dict[str, Any]) -> None:
        """Record the outcome of a build this instance claimed."""
        attributes = {**attributes, "state": str(state), "finished_at": time.time()}
        names = {f"#a{i}": k for i, k in enumerate(attributes)}
        self.db.update_item(
            TableName=self.table, Key={"pk": {"S": f"release#{group}"}, "sk": {"S": sha}},
            UpdateExpression="SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(attributes))),
            ConditionExpression="builder = :me",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={**{f":a{i}": to_attr(v) for i, v in enumerate(attributes.values())},
                                       ":me": to_attr(builder)},
        )

    def release(self, group: str, sha: str) -> Release | None:
        item = self.db.get_item(TableName=self.table, ConsistentRead=True,
                                Key={"pk": {"S": f"release#{group}"}, "sk": {"S": sha}}).get("Item")
        if not item:
            return None
        values = from_item(item)
        fields = {k: v for k, v in values.items() if k in Release.__dataclass_fields__}
        fields["state"] = ReleaseState(fields["state"])
        return Release(**fields)

    def releases(self, group: str) -> list[Release]:
        items = self._query_all(f"release#{group}")
        out = []
        for values in items:
            fields = {k: v for k, v in values.items() if k in Release.__dataclass_fields__}
            fields["state"] = ReleaseState(fields["state"])
            out.append(Release(**fields))
        return sorted(out, key=lambda r: r.started_at)

    # ---- audit ---------------------------------------------------------------
    def record_action(self, group: str, record: dict[str, Any]) -> None:
        """Keep an operator action (who, what, when) in the group's audit trail."""
        at = float(record.get("at") or time.time())
        self.db.put_item(TableName=self.table, Item=to_item({
            "pk": f"audit#{group}", "sk": f"{at:017.6f}#{secrets.token_hex(4)}", **record,
            "expires_at": int(at + AUDIT_RETENTION)}))

    def actions(self, group: str, limit: int = 50) -> list[dict[str, Any]]:
        resp = self.db.query(TableName=self.table, KeyConditionExpression="pk = :pk",
                             ExpressionAttributeValues={":pk": {"S": f"audit#{group}"}},
                             ScanIndexForward=False, Limit=limit)
        return [{k: v for k, v in from_item(i).items() if k not in ("pk", "sk")} for i in resp.get("Items", [])]

    # ---- helpers ------------------------------------------------------------
    def _query_all(self, pk: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self.table, "KeyConditionExpression": "pk = :pk",
                                  "ExpressionAttributeValues": {":pk": {"S": pk}}, "ConsistentRead": True}
        while True:
            resp = self.db.query(**kwargs)
            items += [from_item(i) for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                return items
            kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
