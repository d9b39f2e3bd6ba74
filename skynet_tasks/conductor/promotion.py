"""Manual promotion (``rollout: {canary: manual}``): a rollout held after its canary until an operator says so.

Pure rules on a rollout (``line.Rollout``) and the step's ``now``. With ``promotion == "manual"``,
the canary's success does not publish the release: the rollout waits (``promotable_at`` is when its
wait began; its reason says so), the other members keep taking their tickets and nothing but the
canary has updated. An operator's ``promote`` (``operator_actions``) publishes it in the conductor's
step; with a ``promote_timeout``, the first tick after it ends the rollout as aborted (``rules``).
"""

from __future__ import annotations

import time
from dataclasses import replace

from skynet_tasks.conductor.line import Rollout
from skynet_tasks.states import RolloutState

MANUAL = "manual"
WAITING = "waiting for promotion"


def held_for_promotion(rollout: Rollout) -> bool:
    """The canary's success waits for an operator instead of publishing the release."""
    return rollout.promotion == MANUAL


def awaiting(rollout: Rollout) -> bool:
    """The rollout's canary succeeded and it waits for an operator's ``promote`` (running or paused)."""
    return rollout.promotable_at is not None and not rollout.published \
        and rollout.state in (RolloutState.RUNNING, RolloutState.PAUSED)


def waiting(rollout: Rollout, now: float) -> Rollout:
    """The rollout whose canary just succeeded, waiting for promotion from ``now``."""
    deadline = ""
    if rollout.promote_timeout is not None:
        at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now + rollout.promote_timeout))
        deadline = f"; aborted if not promoted by {at}"
    return replace(rollout, promotable_at=now,
                   reason=f"{WAITING}: `skynet rollout promote {rollout.id}` publishes it{deadline}")


def timed_out(rollout: Rollout, now: float) -> bool:
    """The rollout waited for promotion longer than its ``promote_timeout``."""
    return awaiting(rollout) and rollout.promote_timeout is not None and rollout.promotable_at is not None \
        and now >= rollout.promotable_at + rollout.promote_timeout


def timeout_reason(rollout: Rollout) -> str:
    """Why a rollout that nobody promoted in time was aborted."""
    return f"aborted: not promoted within {rollout.promote_timeout:g} s of its canary's success (promote_timeout)"


def refusal(rollout: Rollout | None, rollout_id: str) -> str | None:
    """Why ``promote`` would change nothing for this rollout (None if it waits for promotion)."""
    if rollout is None:
        return f"rollout {rollout_id} is not in its group's line: nothing to promote"
    if awaiting(rollout):
        return None
    if rollout.published:
        return f"rollout {rollout_id} is published already: nothing to promote"
    if not held_for_promotion(rollout):
        return f"rollout {rollout_id} is not waiting for promotion (its canary publishes it: canary: auto)"
    return f"rollout {rollout_id} is not waiting for promotion: its canary has not succeeded ({rollout.state})"
