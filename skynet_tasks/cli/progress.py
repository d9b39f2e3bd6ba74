"""A rollout's progress as ``skynet rollout status`` shows it: pure, from what the ledger holds, at a given time.

Input: a rollout summary (``skynet_tasks.status.rollout_summary``) and its release's build record, both
read from the ledger just before; nothing here reads or writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from skynet_tasks.cli.exitcodes import outcome_code
from skynet_tasks.ledger import Release
from skynet_tasks.states import ReleaseState, RolloutState, TicketState


@dataclass(frozen=True)
class TicketProgress:
    """One ticket: its place in the line, its instance, its state and how long it has been (or was) at it."""

    number: int
    total: int
    instance: str
    state: str
    seconds: float | None
    # While it bakes (``min_healthy_time``): how long it has stayed healthy, and out of how long.
    bake: tuple[float, float] | None = None

    def line(self) -> str:
        """``ticket 4/10 api-7 updating 2.1 s``, and ``: baking, healthy 1.0 s of 5 s`` while it bakes."""
        took = f" {self.seconds:.1f} s" if self.seconds is not None else ""
        baking = f": baking, healthy {self.bake[0]:.1f} s of {self.bake[1]:g} s" if self.bake else ""
        return f"ticket {self.number}/{self.total} {self.instance} {self.state}{took}{baking}"

    def to_json(self) -> dict[str, Any]:
        """The ticket as ``--json`` prints it."""
        return {"number": self.number, "total": self.total, "instance": self.instance, "state": self.state,
                "seconds": None if self.seconds is None else round(self.seconds, 3),
                "bake": None if self.bake is None else {"healthy": round(self.bake[0], 3), "of": self.bake[1]}}


@dataclass(frozen=True)
class Progress:
    """Where a rollout stands: state, phase, tickets done out of expected, elapsed time, exit code if it ended."""

    rollout_id: str
    group: str
    release: str
    kind: str
    state: str
    phase: str
    done: int
    total: int
    elapsed: float
    reason: str | None
    tickets: tuple[TicketProgress, ...]

    @property
    def over(self) -> bool:
        """Whether watching can stop: the rollout completed, halted or ended for good."""
        return self.state == RolloutState.HALTED or RolloutState(self.state).finished

    @property
    def exit_code(self) -> int:
        """The exit code of this state (``exitcodes.outcome_code``)."""
        return outcome_code(self.state)

    def headline(self) -> str:
        """``rollout ID (group G, release abc123def456): running, 2/3 updated, 41.0 s: ticket 3/3 api-3 updating``."""
        reason = f" ({self.reason})" if self.reason and self.over and self.reason != self.state else ""
        return (f"rollout {self.rollout_id} (group {self.group}, {self.kind} {self.release[:12]}): {self.state}"
                f"{reason}, {self.done}/{self.total} updated, {self.elapsed:.1f} s: {self.phase}")

    def to_json(self) -> dict[str, Any]:
        """The stable ``--json`` schema of ``rollout status`` (docs/operations.md)."""
        return {"rollout_id": self.rollout_id, "group": self.group, "release": self.release, "kind": self.kind,
                "state": self.state, "phase": self.phase, "done": self.done, "total": self.total,
                "elapsed": round(self.elapsed, 3), "reason": self.reason, "over": self.over,
                "exit_code": self.exit_code if self.over else None, "tickets": [t.to_json() for t in self.tickets]}


def ticket_seconds(ticket: dict[str, Any], now: float) -> float | None:
    """How long the ticket has been updating (from the instance's acknowledgement when known), or took."""
    started = ticket.get("acknowledged_at") or ticket.get("started_at")
    if started is None:
        return None
    end = ticket.get("finished_at") if ticket["state"] != TicketState.UPDATING else None
    return max(0.0, float(end if end is not None else now) - float(started))


def ticket_bake(ticket: dict[str, Any], now: float) -> tuple[float, float] | None:
    """(seconds healthy so far, bake time) of an updating ticket baking in this attempt; None otherwise."""
    began, seconds = ticket.get("bake_started_at"), ticket.get("bake_seconds")
    attempt = ticket.get("acknowledged_at") or ticket.get("started_at") or 0.0
    if ticket["state"] != TicketState.UPDATING or began is None or not seconds or float(began) < float(attempt):
        return None  # (a bake recorded before this attempt began is an earlier attempt's)
    return min(max(0.0, now - float(began)), float(seconds)), float(seconds)


def build_phase(summary: dict[str, Any], release: Release | None, now: float) -> str:
    """What a rollout still ``building`` is doing: waiting for a builder, building (where, how long), built."""
    if release is None or release.state is ReleaseState.FAILED:
        return "build requested, waiting for a member to build it"
    if release.state is ReleaseState.BUILDING:
        return f"building on {release.builder} {max(0.0, now - release.started_at):.1f} s"
    took = f" in {release.finished_at - release.started_at:.1f} s" if release.finished_at else ""
    return f"built{took}, the canary takes ticket 1"


def progress(summary: dict[str, Any], release: Release | None, now: float, members: int = 0) -> Progress:
    """The rollout's progress at ``now`` from its summary and its release's build record (None if unclaimed).

    Out of how many: the members the rollout expects once published; before that, the group's ``members``.
    """
    tickets = summary["tickets"]
    expected = summary.get("expected") or ()
    total = max(len(expected) or members, len(tickets), 1)
    shown = tuple(TicketProgress(int(t["number"]), total, t["instance"], t["state"], ticket_seconds(t, now),
                                 ticket_bake(t, now)) for t in tickets)
    state = summary["state"]
    created = float(summary.get("created_at") or now)
    end = summary.get("finished_at")
    elapsed = max(0.0, (float(end) if end else now) - created)
    updating = [t for t in shown if t.state == TicketState.UPDATING]
    if state == RolloutState.BUILDING:
        phase = build_phase(summary, release, now)
    elif updating:
        phase = updating[0].line()
    elif state == RolloutState.RUNNING:
        # Held by its policy (manual promotion, a maintenance window): the record's reason says for what.
        waits = str(summary.get("reason") or "")
        phase = waits if waits.startswith("waiting for") else "waiting for the next ticket"
    else:
        phase = {RolloutState.COMPLETED: "every ticket done", RolloutState.PAUSED: "paused by an operator",
                 RolloutState.SUPERSEDED: f"superseded by {summary.get('superseded_by') or 'a newer rollout'}",
                 }.get(RolloutState(state), str(state))
    return Progress(rollout_id=summary["id"], group=summary["group"], release=summary["release"],
                    kind=summary.get("kind") or "code", state=str(state), phase=phase,
                    done=sum(t.state == TicketState.DONE for t in shown), total=total, elapsed=elapsed,
                    reason=summary.get("reason"), tickets=shown)
