"""The rollout state machine driven as data, for its tests: a group of three members, a rollout's
``RolloutReady``, events decided in turn (``run``), and the states of a rollout's tickets.
"""

from __future__ import annotations

from skynet_tasks.conductor import Group, Rollout, RolloutReady
from skynet_tasks.conductor.fold import each

MEMBERS = ("a", "b", "c")


def ready(rollout_id: str = "r1", release: str = "s1", canary: str | None = "a", timeout: float = 60) -> RolloutReady:
    return RolloutReady(Rollout(id=rollout_id, group="g", release=release, canary=canary, update_timeout=timeout))


def run(group: Group, *events: object, now: float = 100.0, live: tuple[str, ...] = MEMBERS):
    """``events`` decided one after another, each on the group the one before left (``conductor.fold.each``):
    the group the last one left, and every action in order."""
    steps = each(group, events, now, live)  # type: ignore[arg-type]
    return (steps[-1][1].group if steps else group), [action for _, decided in steps for action in decided.actions]


def states(group: Group, rollout_id: str = "r1") -> dict[str, str]:
    rollout = group.rollout(rollout_id)
    assert rollout is not None
    return {t.instance: str(t.state) for t in rollout.tickets}

