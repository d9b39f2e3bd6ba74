"""The automatic revert: what a halted code rollout with ``on_failure: revert`` leaves behind it.

Pure, as the rest of the conductor: ``on_halt`` decides, when a rollout halts, whether a revert
rollout starts and what it is, and the draft (``draft.Draft.halt``) puts both in the same
decision, so they are written in the same conditional transaction (``ledger.decisions``): a
retried or duplicated event finds the rollout halted already and starts nothing twice.

A revert rollout takes the instances that moved to the failing release (the halted rollout's
tickets done, or still updating in its halted batch) back to the group's previous release,
already built, so nothing is built: the most recent first and the canary last, in the halted
rollout's batches. Its tickets are issued at once, it is published at once (its members are
those instances), and the group's desired release goes back to the previous one. The failed
instance is not among them: the installer put it back on its previous release itself.

A revert never reverts: a revert that fails halts with ``REVERT_FAILED`` in its reason, the
state that needs a person (the ledger logs it at ERROR; the notifications page from it).
"""

from __future__ import annotations

from dataclasses import replace

from skynet_tasks.conductor.line import Group, Rollout, Ticket
from skynet_tasks.policy import batch_sizes
from skynet_tasks.states import RolloutKind, RolloutState, TicketState

# The start of the reason of a revert rollout that halted: nothing reverts it, a person must act.
REVERT_FAILED = "revert failed, needs a person"
REVERT = "revert"


def revert_id(halted_id: str) -> str:
    """The id of the revert rollout of ``halted_id``: one per halted rollout, whoever decides it."""
    return f"{halted_id}-revert"


def members_to_revert(halted: Rollout) -> tuple[str, ...]:
    """The instances a revert of ``halted`` takes back, in their order: the latest to move first, the canary last.

    Those whose ticket is done, and those still updating in its halted batch (they may yet end
    on the failing release); never the one that failed, which put itself back.
    """
    moved = [t for t in halted.tickets if t.state in (TicketState.DONE, TicketState.UPDATING)]
    ordered = sorted(moved, key=lambda t: (t.instance == halted.canary, -t.number))
    return tuple(t.instance for t in ordered)


def why_not(group: Group, halted: Rollout) -> str | None:
    """Why a halting ``halted`` starts no revert, to be added to its reason; None when a revert starts.

    Empty when there is nothing to say: its policy is to halt only, it is not code, it was reverted
    already, or it is a revert itself (``on_halt`` says that one needs a person).
    """
    if halted.revert_of is not None:
        return ""
    if halted.on_failure != REVERT or halted.kind is not RolloutKind.CODE or halted.reverted_by is not None:
        return ""
    if not halted.published:
        return "no revert needed: only the canary moved, and it went back to its previous release itself"
    ids = [r.id for r in group.line]
    later = [r for r in group.line[ids.index(halted.id) + 1:] if r.kind is halted.kind] if halted.id in ids else []
    if later:
        return f"no revert: the newer rollout {later[-1].id} takes the group on"
    if group.previous_release is None or group.previous_release == halted.release:
        return "no revert: the group has no previous release to go back to (its first rollout)"
    return None


def revert_rollout(halted: Rollout, release: str, now: float) -> Rollout:
    """The rollout reverting ``halted`` to ``release``: published, its tickets issued in ``members_to_revert`` order."""
    members = members_to_revert(halted)
    tickets = tuple(Ticket(number, instance, taken_at=now) for number, instance in enumerate(members, start=1))
    return Rollout(
        id=revert_id(halted.id), group=halted.group, release=release, kind=halted.kind,
        state=RolloutState.RUNNING, created_at=now, canary=None, published=True, expected=members,
        tickets=tickets, update_timeout=halted.update_timeout, last_number=len(tickets), low_water=1,
        max_parallel=halted.max_parallel,
        batches=halted.batches or batch_sizes(halted.max_parallel, len(halted.expected) or len(members)),
        revert_of=halted.id,
    )


def on_halt(group: Group, halted: Rollout, reason: str, now: float) -> tuple[Rollout, Rollout | None]:
    """``halted`` halted for ``reason``, and the revert rollout it starts, if any (see the module's docstring).

    ``halted`` is the rollout with its state and tickets as halting leaves them.
    """
    if halted.revert_of is not None:
        return replace(halted, reason=f"{REVERT_FAILED}: {reason}"), None
    why = why_not(group, halted)
    if why is not None or group.previous_release is None:
        return replace(halted, reason=f"{reason}; {why}" if why else reason), None
    revert = revert_rollout(halted, group.previous_release, now)
    return replace(halted, reason=f"{reason}; reverted by {revert.id}", reverted_by=revert.id), revert


def needs_person(rollout: Rollout) -> bool:
    """The rollout is a revert that halted: nothing reverts it, a person must act."""
    return rollout.state is RolloutState.HALTED and (rollout.reason or "").startswith(REVERT_FAILED)


def shields(older: Rollout, newest: Rollout) -> bool:
    """``older`` is the halted rollout ``newest`` reverts: the revert does not supersede it (it stays halted)."""
    return newest.revert_of == older.id and older.reverted_by == newest.id and older.state is RolloutState.HALTED
