"""A group being changed by one conductor step: the state so far, and what was done to it.

The rules (``rules``, ``operator_actions``) change a ``Draft`` through these few verbs, so that
every change of a rollout is recorded with a readable note and ends up in the ``Decision``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from functools import cached_property

from skynet_tasks.conductor import revert
from skynet_tasks.conductor.decisions import Action, Decision, Notify
from skynet_tasks.conductor.line import Group, Rollout, Ticket
from skynet_tasks.policy import batch_sizes
from skynet_tasks.states import RolloutKind, RolloutState, TicketState

# A publication this long after its rollout joined the line (and told every member) tells the members
# without a ticket again; sooner, their heartbeat does (seconds: a canary's update; hours: a promotion).
REMIND_AFTER = 60.0


def _end_waiting(rollout: Rollout, state: TicketState, now: float) -> tuple[Ticket, ...]:
    return tuple(
        replace(t, state=state, finished_at=now) if t.state is TicketState.WAITING else t
        for t in rollout.tickets
    )


class Draft:
    """The group being changed by one decision, and what was done to it."""

    def __init__(self, group: Group, now: float, live_members: Collection[str]) -> None:
        self.group = group
        self.now = now
        self._live_members = live_members
        self.actions: list[Action] = []
        self.notes: list[str] = []
        self.touched: dict[str, Rollout] = {}
        # When what this step dispatches was released: the accepted report's time, if this step took one.
        self.released_at = now

    @cached_property
    def live(self) -> set[str]:
        """The group's live members, read on first use."""
        return set(self._live_members)

    def decision(self) -> Decision:
        """What this step decided: the group, the rollouts it touched, the actions and the notes."""
        return Decision(self.group, tuple(self.touched.values()), tuple(self.actions), tuple(self.notes))

    def put(self, rollout: Rollout, note: str) -> None:
        """Record a changed rollout; a finished one leaves the line once nothing of it is in flight."""
        in_flight = any(t.state is TicketState.UPDATING for t in rollout.tickets) or rollout.holds(self.now)
        keep = not rollout.state.finished or in_flight
        line = []
        placed = False
        for existing in self.group.line:
            if existing.id == rollout.id:
                placed = True
                if keep:
                    line.append(rollout)
            else:
                line.append(existing)
        if not placed and keep:
            line.append(rollout)
        self.group = replace(self.group, line=tuple(line))
        self.touched[rollout.id] = rollout
        self.notes.append(note)

    def end(self, rollout: Rollout, state: RolloutState, reason: str, note: str, **changes: object) -> None:
        """End ``rollout`` for good in ``state``: its waiting tickets are cancelled (or superseded)."""
        ticket_end = TicketState.SUPERSEDED if state is RolloutState.SUPERSEDED else TicketState.CANCELLED
        ended = replace(rollout, state=state, reason=reason, tickets=_end_waiting(rollout, ticket_end, self.now),
                        finished_at=self.now, **changes)  # type: ignore[arg-type]
        self.put(ended, note)

    def halt(self, rollout: Rollout, reason: str) -> None:
        """Halt ``rollout``: its waiting tickets are cancelled; with ``on_failure: revert``, its revert starts."""
        halted = replace(rollout, state=RolloutState.HALTED, reason=reason,
                         tickets=_end_waiting(rollout, TicketState.CANCELLED, self.now))
        # With ``on_failure: revert``, the revert starts in this same decision (``conductor.revert``).
        halted, reverting = revert.on_halt(self.group, halted, reason, self.now)
        self.put(halted, f"rollout {rollout.id} halted: {halted.reason}")
        if reverting is not None and self.group.rollout(reverting.id) is None:
            self.put(reverting, f"rollout {reverting.id} reverts {len(reverting.tickets)} instance(s) of rollout "
                                f"{rollout.id} to release {reverting.release}")
            self.group = replace(self.group, desired_release=reverting.release, desired_rollout=reverting.id)

    def publish(self, rollout: Rollout) -> None:
        """Publish ``rollout``: its release becomes the group's (code), its members are expected and told."""
        members = tuple(sorted(self.live | ({rollout.canary} if rollout.canary else set())))
        published = replace(rollout, published=True, expected=members,
                            batches=batch_sizes(rollout.max_parallel, len(members)))
        self.put(published, f"rollout {rollout.id} published release {rollout.release}")
        if rollout.kind is RolloutKind.CODE:  # config and agent versions are not the group's release
            previous = self.group.desired_release
            self.group = replace(
                self.group,
                previous_release=previous if previous != rollout.release else self.group.previous_release,
                desired_release=rollout.release,
                desired_rollout=rollout.id,
            )
        others = tuple(m for m in members if published.ticket_of(m) is None)
        canary = rollout.ticket(1) if rollout.canary is not None else None
        if canary is not None and self.now - canary.taken_at < REMIND_AFTER:
            # Told them all when it joined the line, moments ago (``rules.rollout_ready``): those without a
            # ticket are still asking, or joined since and take one at their next heartbeat
            # (``tasks.re_register``), which completion waits for. Telling them again put a burst of sends
            # (each SendMessage, while the group's next report waits) and requests into the first hand-offs.
            others = ()
        if others:
            # After a long wait (a manual promotion), the members that joined since are told; those that
            # hold a ticket by then ask for none (``Notify.again``).
            self.actions.append(Notify(others, rollout.id, again=canary is not None))
