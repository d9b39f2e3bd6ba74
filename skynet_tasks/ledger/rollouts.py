"""Rollouts: their records, from the build that starts one to the dashboard that shows it.

A rollout's record is created when its build starts (``building``); it joins its group's
line, and its state is the conductor's from then on (``skynet_tasks.ledger.decisions``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks.conductor import Rollout, Ticket
from skynet_tasks.dynamo import condition_failed, from_item, to_item
from skynet_tasks.ledger import expressions
from skynet_tasks.ledger.expected import expected_from_items
from skynet_tasks.ledger.table import ROLLOUT_SK, Store, key, rollout_pk
from skynet_tasks.ledger.tickets import ticket_from_item
from skynet_tasks.policy import DEFAULT_MAX_PARALLEL, DEFAULT_ON_FAILURE
from skynet_tasks.states import RolloutKind, RolloutState

# The fields of a rollout's record that the conductor decides on (and writes).
ROLLOUT_FIELDS = ("state", "canary", "published", "update_timeout", "reason", "finished_at",
                  "superseded_by", "created_at", "release", "kind", "group", "last_number", "low_water",
                  "held_by", "held_until", "max_parallel", "batches",
                  "min_healthy_time", "progress_deadline", "progress_at", "on_failure", "reverted_by", "revert_of",
                  "promotion", "promote_timeout", "promotable_at", "windows", "ignore_windows")


def rollout_from_record(rollout_id: str, header: dict[str, Any], tickets: tuple[Ticket, ...]) -> Rollout:
    """The conductor's rollout from its record and the tickets read with it (no expected members)."""
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
        max_parallel=tuple(str(s) for s in header.get("max_parallel") or DEFAULT_MAX_PARALLEL),
        batches=tuple(int(b) for b in header.get("batches") or ()),
        min_healthy_time=float(header.get("min_healthy_time") or 0.0),
        progress_deadline=float(header["progress_deadline"]) if header.get("progress_deadline") else None,
        progress_at=float(header["progress_at"]) if header.get("progress_at") is not None else None,
        on_failure=str(header.get("on_failure") or DEFAULT_ON_FAILURE),
        reverted_by=header.get("reverted_by"),
        revert_of=header.get("revert_of"),
        promotion=str(header.get("promotion") or "auto"),
        promote_timeout=float(header["promote_timeout"]) if header.get("promote_timeout") is not None else None,
        promotable_at=float(header["promotable_at"]) if header.get("promotable_at") is not None else None,
        windows=tuple(str(w) for w in header.get("windows") or ()),
        ignore_windows=bool(header.get("ignore_windows", False)),
    )


class RolloutStore(Store):
    """Rollout records: created by a build, annotated along the way, read whole."""

    def rollout_item(self, rollout_id: str) -> dict[str, Any] | None:
        """The rollout's record as stored (no tickets)."""
        return self.item(rollout_pk(rollout_id), ROLLOUT_SK)

    def load_rollout(self, rollout_id: str) -> Rollout | None:
        """The rollout with every ticket and its expected members; None if it never joined a line."""
        items = self.query_all(rollout_pk(rollout_id))
        header = next((i for i in items if i["sk"] == ROLLOUT_SK), None)
        if header is None or "release" not in header:
            return None
        tickets = tuple(ticket_from_item(i) for i in items if i["sk"].startswith("ticket#"))
        expected = tuple(expected_from_items(items) or ())
        return replace(rollout_from_record(rollout_id, header, tickets), expected=expected)

    def rollout_view(self, rollout_id: str) -> dict[str, Any] | None:
        """Everything stored about a rollout (header attributes and tickets), for status and the dashboard."""
        items = self.query_all(rollout_pk(rollout_id))
        header = next((i for i in items if i["sk"] == ROLLOUT_SK), None)
        if header is None:
            return None
        view = {k: v for k, v in header.items() if k not in ("pk", "sk")}
        view["id"] = rollout_id
        view["tickets"] = [
            {k: v for k, v in i.items() if k not in ("pk", "sk")} for i in items if i["sk"].startswith("ticket#")
        ]
        expected = expected_from_items(items)
        if expected is not None:
            view["expected"] = expected
        return view

    def recent_rollouts(self, group: str, limit: int = 10, since: float | None = None) -> list[str]:
        """The ids of the group's latest rollouts (created at ``since`` or later, if given), oldest first."""
        # Deliberately bounded: the newest ``limit`` index items, never the group's whole history. The index's
        # sort key starts with the creation time, so ``since`` is a range of it: nothing read before it.
        condition, values = "pk = :pk AND begins_with(sk, :p)", {":p": {"S": "rollout#"}}
        if since is not None:
            condition, values = "pk = :pk AND sk BETWEEN :from AND :to", {
                ":from": {"S": f"rollout#{since:017.6f}"}, ":to": {"S": "rollout#~"}}  # "~" sorts after digits
        pages = self.db.get_paginator("query").paginate(
            TableName=self.table, KeyConditionExpression=condition,
            ExpressionAttributeValues={":pk": {"S": f"group#{group}"}, **values},
            ScanIndexForward=False, ConsistentRead=True, PaginationConfig={"MaxItems": limit, "PageSize": limit})
        return [from_item(i)["rollout_id"] for page in pages for i in page.get("Items", [])][::-1]

    def create_rollout(self, rollout_id: str, group: str, release: str, kind: RolloutKind,
                       attributes: dict[str, Any]) -> bool:
        """Record a new rollout in ``building`` state; False if it exists already (a redelivery)."""
        now = time.time()
        item = to_item({"pk": rollout_pk(rollout_id), "sk": ROLLOUT_SK, "group": group, "release": release,
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
        self.update_item(**expressions.update(
            self.table, key(rollout_pk(rollout_id), ROLLOUT_SK),
            {"state": str(RolloutState.BUILD_FAILED), "reason": reason, "finished_at": time.time()},
            condition="attribute_exists(pk) AND #state = :building", names={"#state": "state"},
            condition_values={":building": str(RolloutState.BUILDING)}))

    def annotate_rollout(self, rollout_id: str, attributes: dict[str, Any]) -> None:
        """Add descriptive attributes (never the state) to a rollout: release details, timings."""
        if "state" in attributes:
            raise ValueError("annotate_rollout cannot change a state; the conductor does")
        self.update_item(**expressions.update(self.table, key(rollout_pk(rollout_id), ROLLOUT_SK), attributes,
                                                 condition="attribute_exists(pk)"))
