"""The rollout model's conductor steps (``test_conductor_model.RolloutModel``), each decision checked: deciding
a step's events together (``conductor.fold``) or on a partial read (``skynet_tasks.ledger.reads``) decides as one by
one on the whole line does; tickets start in order, in running rollouts and open windows, and their deadlines hold a
bake; the progress clock; promotion; a failed update halts.
"""

from __future__ import annotations

from dataclasses import replace

from skynet_tasks.conductor import (
    Decision,
    Dispatch,
    Event,
    Group,
    Notify,
    OperatorAction,
    Rollout,
    Tick,
    TicketTaken,
    UpdateReported,
)
from skynet_tasks.conductor.fold import combined, each, fold
from skynet_tasks.conductor.progress import stalled
from skynet_tasks.conductor.promotion import awaiting
from skynet_tasks.conductor.windows import closed
from skynet_tasks.ledger.reads import focus_of_all, needs_every_ticket, partial_view
from skynet_tasks.states import RolloutState, TicketState


def as_written(before: Group, rollout: Rollout) -> Rollout:
    """The rollout the ledger holds once ``rollout``, decided on a partial view of ``before``, is written:
    the tickets it read as it decided them, every other ticket as it was, the members it expected as it was
    unless the decision expected members (a publication: the view holds none, so any it names are written)."""
    old = before.rollout(rollout.id)
    tickets = {t.number: t for t in (old.tickets if old else ())} | {t.number: t for t in rollout.tickets}
    return replace(rollout, tickets=tuple(tickets[n] for n in sorted(tickets)),
                   expected=rollout.expected or (old.expected if old else ()))


class ConductorSteps:
    """The conductor's side of the model: a step on the events the model delivers, its decision checked against
    deciding them one by one and on the whole line. Mixed into ``RolloutModel``, whose state it reads."""

    group: Group
    now: float
    live: set[str]
    pending: list[Event]
    inbox: list[Dispatch]
    releases: dict[str, str]
    first_dispatch: dict[str, list[int]]
    known: dict[str, Rollout]

    # ---- the conductor -----------------------------------------------------------------------------------------
    def conduct(self, event: Event, *then: Event) -> Decision:
        """One conductor step on ``event`` (and on ``then``, decided after it in the same step, as one)."""
        before = self.group
        events = (event, *then)
        one_by_one = each(before, events, self.now, self.live)
        decision = fold(before, events, self.now, self.live)
        self.check_fold_decides_as_one_by_one(one_by_one, decision)
        self.check_partial_read_decides_alike(before, events, decision)
        for (was, decided), happened in zip(one_by_one, events, strict=True):
            self.check_transition(was, decided)
            self.check_progress(was, happened, decided)
            self.check_promotion(was, happened, decided)
            if isinstance(happened, UpdateReported) and not happened.ok:
                self.check_halted_on_failure(was, happened, decided)
        self.group = decision.group
        self.known.update({r.id: r for r in (*decision.touched, *decision.group.line)})
        self.releases.update({r.id: r.release for r in decision.touched if r.revert_of is not None})
        for action in decision.actions:
            if isinstance(action, Dispatch):
                self.inbox.append(action)
            elif isinstance(action, Notify):
                # Each notified member's take_ticket task posts its ticket.
                self.pending.extend(TicketTaken(action.rollout_id, member) for member in action.instances)
        return decision

    @staticmethod
    def check_fold_decides_as_one_by_one(one_by_one: list[tuple[Group, Decision]], decision: Decision) -> None:
        """Events decided in one step (``conductor.fold``) end where deciding them one by one ends: the same group,
        every action and note in order, and each rollout touched as the last decision to touch it left it."""
        decisions = [decided for _, decided in one_by_one]
        assert decision.group == decisions[-1].group
        assert decision.actions == tuple(a for d in decisions for a in d.actions)
        assert decision.notes == tuple(n for d in decisions for n in d.notes)
        last = {r.id: r for d in decisions for r in d.touched}
        assert {r.id: r for r in decision.touched} == last and len(decision.touched) == len(last)

    def check_partial_read_decides_alike(self, before: Group, events: tuple[Event, ...], decision: Decision) -> None:
        """A decision the read strategy keeps from a partial view is the one the full view gives
        (``skynet_tasks.ledger.reads``: it reads every ticket when ``needs_every_ticket`` says so, for any
        of the events decided in the step)."""
        focus = focus_of_all(events)
        if focus is None:
            return  # the conductor reads every ticket for these events
        view = partial_view(before, focus)
        steps = each(view, events, self.now, self.live)
        if any(needs_every_ticket(was, decided) is not None for was, decided in steps):
            return  # the step is read whole and decided again
        quick = combined(view, [decided for _, decided in steps])
        assert quick.actions == decision.actions
        assert [r.id for r in quick.group.line] == [r.id for r in decision.group.line]
        assert replace(quick.group, line=()) == replace(decision.group, line=())
        full = {r.id: r for r in decision.touched}
        assert [r.id for r in quick.touched] == list(full)
        for rollout in quick.touched:
            assert as_written(before, rollout) == full[rollout.id]

    def check_promotion(self, before: Group, event: Event, decision: Decision) -> None:
        """A manual rollout is published by an operator's promote only, once its canary succeeded, and ends
        unpublished by its promote_timeout only once it waited that long."""
        for rollout in decision.touched:
            old = before.rollout(rollout.id)
            if rollout.promotion != "manual":
                continue
            if rollout.published and (old is None or not old.published):
                assert isinstance(event, OperatorAction) and event.action == "promote" \
                    and event.rollout_id == rollout.id, f"{rollout.id} published by {event}"
                assert old is not None and awaiting(old), f"{rollout.id} promoted before its canary succeeded"
                canary = old.ticket(1)
                assert canary is not None and canary.state is TicketState.DONE
            if isinstance(event, Tick) and old is not None and awaiting(old) and rollout.state.finished \
                    and rollout.state is RolloutState.ABORTED:
                assert old.promote_timeout is not None and old.promotable_at is not None \
                    and self.now >= old.promotable_at + old.promote_timeout, f"{rollout.id} aborted early"
        for action in decision.actions:
            if isinstance(action, Dispatch):
                target = next(r for r in decision.touched + decision.group.line if r.id == action.rollout_id)
                assert target.published or action.instance == target.canary, \
                    f"{action.instance} dispatched in {target.id} before its publication"

    @staticmethod
    def check_halted_on_failure(before: Group, report: UpdateReported, decision: Decision) -> None:
        rollout = before.rollout(report.rollout_id)
        ticket = rollout.ticket(report.ticket) if rollout else None
        if rollout is None or ticket is None or ticket.state is not TicketState.UPDATING \
                or ticket.instance != report.instance or rollout.state.finished:
            return  # a late or duplicate report changes nothing
        after = next(r for r in decision.touched if r.id == rollout.id)
        # The rollout stops at the first instance that fails (an operator resumes it, not the conductor);
        # a newer rollout waiting in line supersedes it at that same boundary.
        newer_waits = before.line[-1].id != rollout.id
        allowed = {RolloutState.HALTED} | ({RolloutState.SUPERSEDED} if newer_waits else set())
        assert after.state in allowed, f"{rollout.id} is {after.state} after ticket {ticket.number} failed"
        assert not any(isinstance(a, Dispatch) and a.rollout_id == rollout.id for a in decision.actions)

    def check_transition(self, before: Group, decision: Decision) -> None:
        was = {(r.id, t.number): t.state for r in before.line for t in r.tickets}
        for rollout in decision.touched:
            for ticket in rollout.tickets:
                if ticket.state is TicketState.UPDATING and was.get((rollout.id, ticket.number)) \
                        is not TicketState.UPDATING:
                    # A ticket starts only in a running rollout, and in number order.
                    assert rollout.state is RolloutState.RUNNING, f"{rollout.id} is {rollout.state} yet dispatched"
                    served = self.first_dispatch.setdefault(rollout.id, [])
                    assert not closed(rollout, self.now), f"{rollout.id} started ticket {ticket.number} outside " \
                                                          f"its windows"
                    if ticket.number not in served:
                        assert not served or ticket.number > max(served), f"{rollout.id} served out of order"
                        served.append(ticket.number)
        for action in decision.actions:
            if isinstance(action, Dispatch):
                target = next(r for r in decision.touched + decision.group.line if r.id == action.rollout_id)
                assert target.state is not RolloutState.HALTED, f"halted {target.id} dispatched ticket {action.ticket}"
        for rollout in decision.touched:
            if rollout.state is RolloutState.COMPLETED:
                # Completion means every expected member still here runs the release it verified.
                for member in rollout.expected:
                    if member in self.live:
                        assert self.installed[member] == rollout.release, f"{member} not on {rollout.release}"
                        assert rollout.release in self.verified[member]

    def check_progress(self, before: Group, event: Event, decision: Decision) -> None:
        """A dispatched ticket's deadline includes its rollout's bake; the progress clock never runs backwards
        and restarts when an instance becomes healthy; after a tick, no running rollout is past its deadline."""
        was = {r.id: r for r in before.line}
        for rollout in decision.touched:
            old = was.get(rollout.id)
            if rollout.progress_at is not None:
                assert rollout.progress_at <= self.now
                assert old is None or old.progress_at is None or rollout.progress_at >= old.progress_at
            for ticket in rollout.tickets:
                previous = old.ticket(ticket.number) if old else None
                if ticket.state is TicketState.UPDATING and (previous is None or previous.state
                                                              is not TicketState.UPDATING):
                    assert ticket.deadline == self.now + rollout.update_timeout + rollout.min_healthy_time
                if rollout.state is RolloutState.RUNNING and ticket.state is TicketState.DONE \
                        and previous is not None and previous.state is not TicketState.DONE:
                    assert rollout.progress_at == self.now, f"{rollout.id}: healthy {ticket.number}, clock kept"
        if isinstance(event, Tick):
            late = [r.id for r in decision.group.line if stalled(r, self.now)]
            assert not late, f"running past their progress deadline after a tick: {late}"
