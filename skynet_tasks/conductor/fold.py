"""Several events decided in one step: the conductor's decisions folded one after another.

A conductor step that receives a run of events of one group (the members' ticket requests, which
come in a burst when a rollout starts) decides them in one step: one read, each event decided on
the group as the one before it left it, one conditional write of the whole. Nineteen ticket
requests then cost two or three writes, not nineteen, and a report decided beside them meets far
fewer writes to lose its own to.

Pure, like ``rules``: ``fold`` returns what deciding the events one by one returns, as one
``Decision`` (the model test, ``tests/test_conductor_model.py``, holds it to that).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from skynet_tasks.conductor.decisions import Decision
from skynet_tasks.conductor.events import Event
from skynet_tasks.conductor.line import Group, Rollout
from skynet_tasks.conductor.rules import decide


def each(group: Group, events: Sequence[Event], now: float,
         live_members: Collection[str]) -> list[tuple[Group, Decision]]:
    """Each event's decision, in order, with the group it was decided on (the one the decision before left)."""
    steps = []
    for event in events:
        decision = decide(group, event, now, live_members)
        steps.append((group, decision))
        group = decision.group
    return steps


def combined(group: Group, decisions: Sequence[Decision]) -> Decision:
    """The decisions taken one after another on ``group``, as one: the last group, every rollout touched
    (as the last decision to touch it left it, in the order first touched), every action and note."""
    if not decisions:
        return Decision(group)
    touched: dict[str, Rollout] = {}
    for decision in decisions:
        touched.update((rollout.id, rollout) for rollout in decision.touched)
    return Decision(decisions[-1].group, tuple(touched.values()),
                    tuple(action for d in decisions for action in d.actions),
                    tuple(note for d in decisions for note in d.notes))


def fold(group: Group, events: Sequence[Event], now: float, live_members: Collection[str]) -> Decision:
    """Decide ``events`` one after another on ``group``, each on the state the one before left; one decision."""
    return combined(group, [decision for _, decision in each(group, events, now, live_members)])
