"""``publish``: the builder offers a built release to its group, as the canary of a new rollout.

Of the card's two readings of "publish", this module is the builder's: the release is
built and recorded in the ledger (``tasks.build``), and publishing it fills the
rollout's record with the release's details and tells the group's conductor the
rollout is ready, with the builder as its canary; the conductor then lines up ticket 1
and tells every other member to take a ticket. The conductor's own publication (the
release becoming the group's desired release when the canary succeeds) stays a
transition of the pure decision (``conductor.decide``), written in the same
conditional write as the next ticket's dispatch: a task of its own there would put a
message, or at least a second step, between a canary's success and the next
dispatch, which is the hand-off latency the product is measured by.

The build runs ``publish_release`` in-process right after recording the release (no
SQS hop between a build and its canary). The ``skynet.publish`` task re-announces a
rollout whose release is built but that never became ready (its builder stopped in
between); it is idempotent: a rollout that left ``building`` is left alone, and the
announcement's deduplication id comes from the rollout.
"""

from __future__ import annotations

import logging
import time

from skynet_tasks.app import app
from skynet_tasks.conductor import Rollout, RolloutReady
from skynet_tasks.context import Context
from skynet_tasks.ledger import Release
from skynet_tasks.messages import PUBLISH_TASK
from skynet_tasks.policy import (
    PolicyError,
    RolloutPolicy,
    check_timing,
    parse_max_parallel,
    parse_policy,
)
from skynet_tasks.policy_overrides import RolloutOverrides
from skynet_tasks.states import ReleaseState, RolloutKind, RolloutState
from skynet_tasks.tasks.base import SkynetTask, send_event

log = logging.getLogger(__name__)


@app.task(name=PUBLISH_TASK, base=SkynetTask, bind=True, time_limit=60)
def publish(self: SkynetTask, rollout_id: str) -> None:
    """Announce the built release of rollout ``rollout_id`` to its group, this instance as its canary."""
    handle_publish(self.ctx, rollout_id)


def handle_publish(ctx: Context, rollout_id: str) -> bool:
    """Publish a code rollout still ``building`` whose release is built; False if there is nothing to publish."""
    item = ctx.ledger.rollout_item(rollout_id)
    if item is None or item.get("state") != RolloutState.BUILDING \
            or item.get("kind", RolloutKind.CODE) != RolloutKind.CODE:
        log.info("rollout %s: not a code rollout waiting for its release (%s); nothing to publish", rollout_id,
                 None if item is None else item.get("state"))
        return False
    release = ctx.ledger.release(str(item["group"]), str(item["release"]))
    if release is None or release.state is not ReleaseState.BUILT:
        log.warning("rollout %s: release %s is not built; nothing to publish", rollout_id, item["release"])
        return False
    publish_release(ctx, rollout_id, release, float(item.get("requested_at") or item["created_at"]))
    return True


def publish_release(ctx: Context, rollout_id: str, release: Release, requested_at: float) -> None:
    """Record ``release``'s details on the rollout and announce it ready, with this instance as its canary.

    The rollout's policy (batch sizes, bake time, progress deadline, failure policy, canary mode, promotion
    timeout, maintenance windows) is the one it was requested with (``policy_overrides``: ``skynet deploy``'s
    options, a webhook route, the dashboard), else its release's ``skynet.yml``'s, key by key; a rollout keeps
    it to its end. Its windows do not hold it when it was requested with ``skynet deploy --now``.
    """
    me = ctx.settings.require_instance().instance_id
    record = ctx.ledger.rollout_item(rollout_id) or {}
    update_timeout = float(release.update_timeout or 300.0)
    try:
        overrides = RolloutOverrides.from_record(record)
        policy = overrides.over(parse_policy(release.rollout_policy) if release.rollout_policy else RolloutPolicy())
        max_parallel = overrides.max_parallel or parse_max_parallel(release.max_parallel)
        # The overrides were checked when requested, but not against this release's update timeout.
        check_timing(policy.min_healthy_time, policy.progress_deadline, update_timeout)
    except PolicyError as error:  # both were checked when written: a record changed by hand
        ctx.ledger.fail_build(rollout_id, f"invalid rollout policy: {error}")
        log.warning("rollout %s: invalid rollout policy: %s", rollout_id, error)
        return
    ctx.ledger.annotate_rollout(rollout_id, {
        "sha256": release.sha256, "size": release.size, "author": release.author, "message": release.message,
        "build_log_key": release.log_key, "builder": release.builder, "build_duration":
            (release.finished_at or time.time()) - release.started_at})
    rollout = Rollout(id=rollout_id, group=release.group, release=release.sha, canary=me,
                      update_timeout=update_timeout, created_at=requested_at,
                      max_parallel=max_parallel, min_healthy_time=policy.min_healthy_time,
                      progress_deadline=policy.progress_deadline, on_failure=policy.on_failure,
                      promotion=policy.canary, promote_timeout=policy.promote_timeout,
                      windows=policy.windows, ignore_windows=bool(record.get("ignore_windows")))
    send_event(ctx, release.group, RolloutReady(rollout))
    log.info("rollout %s: release %s ready; %s takes ticket 1 as the canary", rollout_id, release.sha, me)
