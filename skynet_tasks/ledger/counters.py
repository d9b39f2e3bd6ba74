"""Counters of each group's rollouts, kept in the state table: what the Prometheus metrics count.

Layout: one item per group, pk ``counters``, sk ``group#<group>``, so the dashboard reads every
group's counters in one query, and steps of two groups never write the same item. Each attribute
is a number only ever increased (DynamoDB ``ADD``):

- ``rollouts:<state>``: times a rollout of the group entered ``state`` (a resume enters ``running``
  again; a rollout joining the line enters ``running``);
- ``ticket_failures``: tickets that failed (a report or a passed deadline);
- ``<histogram>:sum`` and ``<histogram>:bucket:<bound>`` (observations in that bucket alone, not
  cumulative; ``+Inf`` for those above every bound; the count is their total), for ``handoff``
  (the conductor deciding a ticket's turn to its instance acknowledging it), ``update`` (the
  acknowledgement to the conductor receiving the ticket's report) and ``rollout`` (a completed
  rollout's creation to its completion).

Exactly once: the increments of a decision are written in the decision's own transaction
(``ledger.decisions``), which is conditioned on the group's version. A redelivered or duplicated
event is decided again on what the first write left, so it either changes nothing (no write, no
increment) or is a transition of its own; a decision that loses its write increments nothing.

Trust: the values come from the conductor's own decision (times of this env's instances); the
group name is part of a key, never of an expression.
"""

from __future__ import annotations

from typing import Any

from skynet_tasks.conductor import Decision, Group
from skynet_tasks.dynamo import to_attr
from skynet_tasks.ledger.table import Store, key
from skynet_tasks.states import RolloutState, TicketState

COUNTERS_PK = "counters"
HANDOFF_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
UPDATE_BUCKETS = (1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
ROLLOUT_BUCKETS = (10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
HISTOGRAMS: dict[str, tuple[float, ...]] = {"handoff": HANDOFF_BUCKETS, "update": UPDATE_BUCKETS,
                                            "rollout": ROLLOUT_BUCKETS}


def counters_sk(group: str) -> str:
    """The sort key of ``group``'s counters item."""
    return f"group#{group}"


def bucket_name(histogram: str, value: float) -> str:
    """The attribute counting ``value`` in ``histogram``: the first bucket whose bound holds it."""
    bound = next((b for b in HISTOGRAMS[histogram] if value <= b), None)
    return f"{histogram}:bucket:{'+Inf' if bound is None else repr(bound)}"


def _observe(out: dict[str, float], histogram: str, value: float) -> None:
    # Clocks of two instances may disagree by a little: a negative span is a zero one.
    value = round(max(0.0, value), 6)
    # No count attribute: the buckets sum to it, and each attribute of an update costs (about 0.5 ms on
    # moto per step, on the hand-off's path).
    for name, step in ((f"{histogram}:sum", value), (bucket_name(histogram, value), 1.0)):
        out[name] = out.get(name, 0.0) + step


def increments(before: Group, decision: Decision) -> dict[str, float]:
    """What ``decision``, taken on ``before``, adds to the group's counters (empty: nothing)."""
    out: dict[str, float] = {}
    old = {r.id: r for r in before.line}
    for rollout in decision.touched:
        was = old.get(rollout.id)
        if was is None or was.state is not rollout.state:
            out[f"rollouts:{rollout.state}"] = out.get(f"rollouts:{rollout.state}", 0.0) + 1
            if rollout.state is RolloutState.COMPLETED and rollout.finished_at and rollout.created_at:
                _observe(out, "rollout", rollout.finished_at - rollout.created_at)
        previous = {t.number: t for t in was.tickets} if was else {}
        for ticket in rollout.tickets:
            prior = previous.get(ticket.number)
            if ticket.state is TicketState.FAILED and (prior is None or prior.state is not TicketState.FAILED):
                out["ticket_failures"] = out.get("ticket_failures", 0.0) + 1
            ended = prior is not None and prior.state is TicketState.UPDATING \
                and ticket.state in (TicketState.DONE, TicketState.FAILED)
            if not ended or ticket.acknowledged_at is None:
                continue  # a ticket failed by its deadline was never acknowledged: no timings
            if ticket.finished_at is not None:
                _observe(out, "update", ticket.finished_at - ticket.acknowledged_at)
            # Ticket 1 is the rollout's first turn (the canary's): no ticket hands over to it.
            # From the report that released it (``handed_at``; tickets dispatched before it was kept: the dispatch).
            handed = ticket.handed_at if ticket.handed_at is not None else ticket.started_at
            if ticket.number > 1 and handed is not None:
                _observe(out, "handoff", ticket.acknowledged_at - handed)
    return out


def counters_update(table: str, group: str, added: dict[str, float]) -> dict[str, Any]:
    """A transaction's ``Update`` adding ``added`` to ``group``'s counters (the item is made if missing)."""
    names = {f"#c{i}": name for i, name in enumerate(added)}
    values = {f":c{i}": to_attr(float(value)) for i, value in enumerate(added.values())}
    return {"TableName": table, "Key": key(COUNTERS_PK, counters_sk(group)),
            "UpdateExpression": "ADD " + ", ".join(f"#c{i} :c{i}" for i in range(len(added))),
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}


class CounterStore(Store):
    """Reads of the groups' counters."""

    def counters(self) -> dict[str, dict[str, float]]:
        """Every group's counters, by group name (a group whose rollouts never moved has none)."""
        out: dict[str, dict[str, float]] = {}
        for item in self.query_all(COUNTERS_PK):
            group = str(item.pop("sk")).removeprefix("group#")
            item.pop("pk", None)
            out[group] = {k: float(v) for k, v in item.items() if isinstance(v, int | float)}
        return out


def cumulative_buckets(counts: dict[str, float], histogram: str) -> list[tuple[str, float]]:
    """The stored buckets of ``histogram`` as Prometheus' cumulative (upper bound, count) list, ending ``+Inf``."""
    out, total = [], 0.0
    for bound in HISTOGRAMS[histogram]:
        total += counts.get(f"{histogram}:bucket:{bound!r}", 0.0)
        out.append((repr(bound), total))
    return [*out, ("+Inf", total + counts.get(f"{histogram}:bucket:+Inf", 0.0))]
