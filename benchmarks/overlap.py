"""The soak's batch check: the tickets of a group updating at once were of one rollout's one batch.

Pure, on the ledger's record of each ticket (its start and end times) and each rollout's policy
(``batches``, fixed at publication, and whether ticket 1 was a canary): the invariant the conductor
keeps (``skynet_tasks.conductor.batches``), measured from what happened rather than decided.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from skynet_tasks.conductor import Rollout
from skynet_tasks.conductor import batches as rollout_batches


@dataclass(frozen=True, order=True)
class Span:
    """A ticket's update: from its start to its end (infinity while it runs), and its batch (index, size)."""

    start: float
    end: float
    rollout_id: str
    number: int
    batch: tuple[int, int]


def policy_of(rollout_id: str, view: dict[str, Any]) -> Rollout:
    """Enough of a rollout (its canary and batch sizes) to place its tickets in their batches."""
    return Rollout(id=rollout_id, group=str(view.get("group", "")), release=str(view.get("release", "")),
                   canary=view.get("canary"), batches=tuple(int(b) for b in view.get("batches") or ()))


def batch_of(policy: Rollout, number: int) -> tuple[int, int]:
    """The batch ticket ``number`` of the rollout is in, and that batch's size."""
    return rollout_batches.batch_of(policy, number)


def updating_at_once(group: str, spans: Iterable[Span]) -> list[str]:
    """A violation for every start that made the tickets updating at once more than one batch of one rollout,
    or more than that batch's size; none when the group kept to its policy (one at a time by default)."""
    violations = []
    active: list[Span] = []
    for span in sorted(spans):
        active = [s for s in active if s.end > span.start]
        active.append(span)
        lots = {(s.rollout_id, s.batch[0]) for s in active}
        if len(lots) > 1 or len(active) > span.batch[1]:
            names = ", ".join(f"{s.rollout_id}#{s.number}" for s in active)
            # When each started and ended (seconds after the earliest start), so a failure can be read.
            times = ", ".join(f"#{s.number} {s.start - active[0].start:.3f}-{s.end - active[0].start:.3f} s"
                              for s in active)
            violations.append(f"{group}: {names} were updating at once (a batch of {span.batch[1]} at most;"
                              f" {times})")
    return violations
