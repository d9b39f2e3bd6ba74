"""What ``skynet status`` and the dashboard show: groups, instances and rollouts, read fresh."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from skynet_tasks.deadletters import DeadLetterCount
from skynet_tasks.ledger import Ledger
from skynet_tasks.registry import Endpoint, Registry

TICKET_FIELDS = ("number", "instance", "state", "taken_at", "started_at", "acknowledged_at", "finished_at", "error",
                 "log_key", "attempts", "bake_started_at", "bake_seconds")
ROLLOUT_FIELDS = ("id", "group", "kind", "release", "state", "reason", "canary", "created_at", "finished_at",
                  "repo", "branch", "source", "author", "message", "sha256", "size", "builder", "build_log_key",
                  "build_duration", "superseded_by", "published", "on_failure", "revert_of", "reverted_by")


def rollout_summary(view: dict[str, Any]) -> dict[str, Any]:
    """A stored rollout view cut to ``ROLLOUT_FIELDS``, with its whole tickets in number order."""
    summary = {k: view.get(k) for k in ROLLOUT_FIELDS}
    # A query can see a ticket item before a transaction's write of its fields is visible
    # (moto shows it, DynamoDB allows it): such a half-written item waits for the next read.
    complete = [t for t in view.get("tickets", []) if "number" in t and "state" in t and "instance" in t]
    summary["tickets"] = [{k: t.get(k) for k in TICKET_FIELDS} for t in sorted(complete, key=lambda t: t["number"])]
    return summary


def refusals(endpoint: Endpoint) -> dict[str, Any]:
    """The registry entries a proxy refuses to route to, as status shows them (none: nothing shown)."""
    if not endpoint.refused_count:
        return {}
    return {"refused_count": endpoint.refused_count, "refused_entries": list(endpoint.refused_entries)}


def refusal_warnings(endpoints: Sequence[Endpoint], max_age: float, now: float) -> list[str]:
    """One line per live proxy that leaves registry entries out of its configuration, naming the first."""
    return [f"WARNING: proxy {e.instance_id} leaves {e.refused_count} registry entr"
            f"{'ies' if e.refused_count != 1 else 'y'} out of its configuration: "
            + "; ".join(e.refused_entries[:2]) + ("; ..." if e.refused_count > 2 else "")
            for e in endpoints if e.refused_count and e.age(now) <= max_age]


UNREADABLE = "ALARM: the maintenance dead-letter queues could not be read: whether an event failed is unknown"


def dead_letter_alarms(counts: Sequence[DeadLetterCount] | None) -> list[str]:
    """One alarm line per maintenance dead-letter queue that holds messages (None: they could not be read)."""
    if counts is None:
        return [UNREADABLE]
    return [f"ALARM: group {c.group} has {c.messages} dead letter{'s' if c.messages != 1 else ''} in {c.queue}: "
            f"maintenance events that failed too often (see: skynet dlq show {c.group})"
            for c in counts if c.messages]


def collect_status(ledger: Ledger, registry: Registry, env: str, max_age: float, rollouts_per_group: int = 5,
                   now: float | None = None, dead_letters: Sequence[DeadLetterCount] | None = ()) -> dict[str, Any]:
    """What ``skynet status --json`` prints: every group with its instances and recent rollouts, and alarms.

    An instance whose heartbeat is older than ``max_age`` is marked stale; ``dead_letters`` are the
    env's maintenance dead-letter queues (``deadletters.dead_letter_counts``), each non-empty one an alarm
    (None if they could not be read: an alarm too).
    """
    now = time.time() if now is None else now
    endpoints = registry.endpoints(env)
    groups = []
    for name in ledger.list_groups():
        info = ledger.group_info(name)
        rollouts = []
        for rollout_id in ledger.recent_rollouts(name, rollouts_per_group):
            view = ledger.rollout_view(rollout_id)
            if view is not None:
                rollouts.append(rollout_summary(view))
        groups.append({
            "name": name,
            "repo": info.get("repo"),
            "branch": info.get("branch"),
            "desired_release": info.get("desired_release"),
            "desired_rollout": info.get("desired_rollout"),
            "previous_release": info.get("previous_release"),
            "instances": [
                {"id": e.instance_id, "address": e.address, "port": e.port, "release": e.release or None,
                 "health": e.health, "heartbeat_age": round(e.age(now), 3), "stale": e.age(now) > max_age,
                 "agent_version": e.agent_version, "last_task": e.last_task, "last_outcome": e.last_outcome,
                 **refusals(e)}
                for e in endpoints if e.group == name
            ],
            "rollouts": rollouts,
        })
    return {"env": env, "generated_at": now, "groups": groups,
            "dead_letters": [asdict(count) for count in dead_letters or ()],
            "alarms": dead_letter_alarms(dead_letters) + refusal_warnings(endpoints, max_age, now)}
