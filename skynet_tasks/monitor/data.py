"""Read-only views of one env for the dashboard, its API and its metrics.

Everything is read fresh from the state table and the registry on each request;
queue depths come from the process's ``QueueCache`` (SQS at most once per queue per
30 s, whatever the number of scrapes and open tabs); nothing here writes. The
shaping of views (ticket durations, hand-off latencies) is pure and separate
from the reads, so it is tested as data.

Values in these views come from the state table and the registry, which
instances write: they are rendered escaped (Jinja autoescape) and never used
to build a key or a path except the log keys the ledger itself recorded.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from skynet_tasks import names
from skynet_tasks.artifact_store import ArtifactStore
from skynet_tasks.deadletters import MAINT_DLQ_SUFFIX, DeadLetterCount
from skynet_tasks.ledger import Ledger
from skynet_tasks.monitor.queue_cache import TTL_SECONDS, QueueCache
from skynet_tasks.queues import Queues
from skynet_tasks.registry import Registry
from skynet_tasks.status import rollout_summary
from skynet_tasks.taskruns import TaskRuns

log = logging.getLogger(__name__)

# What a rollout id may look like in a URL (buildrequest.new_rollout_id makes r<date>-<time>-<hex>).
ROLLOUT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
LOG_LIMIT = 200_000  # characters of a log shown; the tail, where the failure is


class NotFound(Exception):
    """The thing asked for does not exist (or its name is not a valid one)."""


def check_rollout_id(rollout_id: str) -> str:
    """``rollout_id`` if it looks like a rollout id; NotFound otherwise."""
    if not ROLLOUT_ID.match(rollout_id):
        raise NotFound(f"{rollout_id!r} is not a rollout id")
    return rollout_id


def check_part(kind: str, value: str) -> str:
    """``value`` if it may be part of a resource name; NotFound (naming ``kind``) otherwise."""
    try:
        return names.check_name_part(kind, value)
    except ValueError as error:
        raise NotFound(str(error)) from None


# ---- pure shaping -------------------------------------------------------------
def _span(start: Any, end: Any, now: float) -> float | None:
    if not isinstance(start, int | float):
        return None
    stop = end if isinstance(end, int | float) else now
    return round(max(0.0, stop - start), 3)


def ticket_timeline(summary: dict[str, Any], now: float) -> dict[str, Any]:
    """A rollout summary with, per ticket, its wait and update durations and the hand-off latency before it.

    The hand-off latency of ticket n is the time from the end of the previous ticket
    that ran to ticket n's instance acknowledging its update: how long "your number came
    up" took to reach the instance. The conductor writes ticket n's ``started_at`` in the
    same step that ends ticket n-1, so that difference would always read 0.
    """
    tickets = []
    previous_end: float | None = None
    for ticket in summary.get("tickets", []):
        started, finished = ticket.get("started_at"), ticket.get("finished_at")
        acknowledged, handoff = ticket.get("acknowledged_at"), None
        if isinstance(acknowledged, int | float) and previous_end is not None:
            handoff = round(max(0.0, acknowledged - previous_end), 3)
        tickets.append({
            **ticket,
            "waited": _span(ticket.get("taken_at"), started, now) if ticket.get("state") != "cancelled"
            else _span(ticket.get("taken_at"), finished, now),
            "updated": _span(started, finished, now),
            "handoff": handoff,
        })
        if isinstance(finished, int | float) and isinstance(started, int | float):
            previous_end = finished
    created, ended = summary.get("created_at"), summary.get("finished_at")
    failing = next((t for t in reversed(tickets) if t.get("state") == "failed"), None)
    return {**summary, "tickets": tickets, "duration": _span(created, ended, now),
            "failed_ticket": failing["number"] if failing else None}


def summarize(view: dict[str, Any], now: float) -> dict[str, Any]:
    """The timeline of a stored rollout view, leaving out ticket items that are not whole yet.

    A query may meet the items of a transaction one by one (DynamoDB promises only
    read-committed isolation to queries), so an item can lack its fields for a moment;
    the next refresh shows it whole.
    """
    tickets = [t for t in view.get("tickets", []) if isinstance(t.get("number"), int) and t.get("state")]
    shaped = ticket_timeline(rollout_summary({**view, "tickets": tickets}), now)
    shaped["progress"] = progress(shaped)
    return shaped


def progress(summary: dict[str, Any]) -> dict[str, int]:
    """How many tickets the summary holds (``total``), and how many are in each state."""
    counts: dict[str, int] = {"total": len(summary.get("tickets", []))}
    for ticket in summary.get("tickets", []):
        counts[str(ticket.get("state"))] = counts.get(str(ticket.get("state")), 0) + 1
    return counts


# ---- reads ------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueDepth:
    """One queue's message counts, and the visible messages of its dead-letter queue (None if it has none)."""

    name: str
    visible: int
    in_flight: int
    delayed: int
    dead_letter: int | None


class MonitorData:
    """Views of one env; clients passed in; only queue depths cached (``queue_ttl`` seconds)."""

    def __init__(self, ledger: Ledger, registry: Registry, queues: Queues, store: ArtifactStore,
                 taskruns: TaskRuns, env: str, max_age: float, queue_ttl: float = TTL_SECONDS) -> None:
        self.ledger = ledger
        self.registry = registry
        self.queues = queues
        self.queue_cache = QueueCache(queues.sqs, env, queue_ttl)
        self.store = store
        self.taskruns = taskruns
        self.env = env
        self.max_age = max_age

    def status(self, rollouts_per_group: int = 5, now: float | None = None) -> dict[str, Any]:
        """Groups with their instances and recent rollouts: ``skynet status --json``'s shape, plus timelines.

        Built like ``skynet_tasks.status.collect_status``, but through ``summarize``, so that a
        ticket item met half-written does not fail the page.
        """
        now = time.time() if now is None else now
        endpoints = self.instances(now)
        groups = []
        for name in self.ledger.list_groups():
            info = self.ledger.group_info(name)
            rollouts = [summarize(view, now) for rollout_id in self.ledger.recent_rollouts(name, rollouts_per_group)
                        if (view := self.ledger.rollout_view(rollout_id)) is not None]
            groups.append({
                "name": name,
                **{k: info.get(k) for k in ("repo", "branch", "desired_release", "desired_rollout",
                                            "previous_release")},
                "instances": [e for e in endpoints if e["group"] == name],
                "rollouts": rollouts,
                "current_rollout": rollouts[-1] if rollouts else None,
                "actions": self.ledger.actions(name, 5),
            })
        return {"env": self.env, "generated_at": now, "groups": groups}

    def dead_letters(self) -> list[DeadLetterCount]:
        """Every maintenance dead-letter queue of the env with its messages, visible, in flight or delayed
        (non-zero: an alarm); as ``deadletters.dead_letter_counts`` counts them, from the cached depths."""
        prefix = names.prefix(self.env)
        return [DeadLetterCount(name[len(prefix):-len(MAINT_DLQ_SUFFIX)], name, sum(depth.values()))
                for name, depth in self.queue_cache.snapshot().depths.items() if name.endswith(MAINT_DLQ_SUFFIX)]

    def group(self, group: str) -> dict[str, Any]:
        """One group as ``status`` shows it, with the last 20 operator actions; NotFound for a bad or unknown name."""
        check_part("group", group)
        found = next((g for g in self.status(10)["groups"] if g["name"] == group), None)
        if found is None:
            raise NotFound(f"no group {group}")
        found["actions"] = self.ledger.actions(group, 20)  # more of the trail than the overview shows
        return found

    def instances(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every registered instance of the env, with its heartbeat's age and whether it is stale."""
        now = time.time() if now is None else now
        out = []
        for endpoint in self.registry.endpoints(self.env):
            values = asdict(endpoint)
            values["id"] = values.pop("instance_id")
            values["heartbeat_age"] = round(endpoint.age(now), 3)
            values["stale"] = endpoint.age(now) > self.max_age
            out.append(values)
        return out

    def rollouts(self, group: str | None = None, limit: int = 20, now: float | None = None) -> list[dict[str, Any]]:
        """The recent rollouts of ``group`` (or of every group) as timelines, newest first."""
        now = time.time() if now is None else now
        groups = [check_part("group", group)] if group else self.ledger.list_groups()
        out = []
        for name in groups:
            for rollout_id in self.ledger.recent_rollouts(name, limit):
                view = self.ledger.rollout_view(rollout_id)
                if view is not None:
                    out.append(summarize(view, now))
        return sorted(out, key=lambda r: r.get("created_at") or 0, reverse=True)

    def rollout(self, rollout_id: str, now: float | None = None) -> dict[str, Any]:
        """One rollout's ticket timeline, with the failing ticket's log attached."""
        now = time.time() if now is None else now
        view = self.ledger.rollout_view(check_rollout_id(rollout_id))
        if view is None:
            raise NotFound(f"no rollout {rollout_id}")
        shaped = summarize(view, now)
        shaped["failed_log"] = None
        if shaped["failed_ticket"] is not None:
            shaped["failed_log"] = self.ticket_log(rollout_id, shaped["failed_ticket"])
        return shaped

    def ticket_log(self, rollout_id: str, number: int) -> str | None:
        """The tail of a ticket's update log; None if none was stored or it is unreadable.

        NotFound for a malformed rollout id or no such ticket.
        """
        ticket = self.ledger.ticket(check_rollout_id(rollout_id), number)
        if ticket is None:
            raise NotFound(f"rollout {rollout_id} has no ticket {number}")
        return self._log(ticket.get("log_key"))

    def releases(self, group: str | None = None) -> list[dict[str, Any]]:
        """The builds of ``group`` (or of every group), with their build time, newest first."""
        groups = [check_part("group", group)] if group else self.ledger.list_groups()
        out = []
        for name in groups:
            for release in self.ledger.releases(name):
                values = asdict(release)
                values["state"] = str(release.state)
                values["build_time"] = (round(release.finished_at - release.started_at, 3)
                                        if release.finished_at and release.started_at else None)
                out.append(values)
        return sorted(out, key=lambda r: r.get("started_at") or 0, reverse=True)

    def release_log(self, group: str, sha: str) -> str | None:
        """The tail of the build log of release ``sha`` in ``group``; None if none is readable.

        NotFound for a malformed group or sha, or no such release.
        """
        # Releases are recorded under their full commit id (a build request carries no other),
        # so an abbreviation can name none.
        if not names.SHA.match(sha):
            raise NotFound(f"{sha!r} is not a commit sha")
        release = self.ledger.release(check_part("group", group), sha)
        if release is None:
            raise NotFound(f"no release {sha} in group {group}")
        return self._log(release.log_key)

    def queue_depths(self) -> list[QueueDepth]:
        """Depth of every queue of the env, with its dead-letter queue's depth beside it (at most ``queue_ttl`` old)."""
        depths = self.queue_cache.snapshot().depths
        dead = {n for n in depths if n.endswith("-dlq") or n.endswith("-dlq.fifo")}
        out = []
        for name, depth in depths.items():
            if name in dead:
                continue
            dlq = depths.get(names.dead_letter_queue(name))
            out.append(QueueDepth(name, depth["visible"], depth["in_flight"], depth["delayed"],
                                  dlq["visible"] if dlq else None))
        return out

    def task_runs(self, instance: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """The recent task runs of ``instance`` (or of every registered instance), newest first."""
        instances = ([check_part("instance id", instance)] if instance
                     else [e.instance_id for e in self.registry.endpoints(self.env)])
        out = []
        for name in instances:
            out += [asdict(run) for run in self.taskruns.recent(name, limit)]
        return sorted(out, key=lambda r: r["started_at"], reverse=True)

    def actions(self, group: str) -> list[dict[str, Any]]:
        """The last 50 operator actions on ``group``; NotFound for a bad group name."""
        return self.ledger.actions(check_part("group", group), 50)

    def _log(self, key: Any) -> str | None:
        if not isinstance(key, str) or not key:
            return None
        try:
            text = self.store.get_text(key)
        except ClientError as error:
            log.warning("log %s unreadable: %s", key, error)
            return None
        return text[-LOG_LIMIT:]
