"""An instance joining and leaving its group: boot convergence, the sweeper, clean shutdown.

A new, empty instance of a group (scale-out, a replaced instance) installs the
group's desired release before it registers, without waiting for a ticket: it was
not serving anything, so there is nothing to take one at a time. The sweeper runs
from heartbeats (``tasks.re_register``): it prunes registry entries that stopped
beating and deletes the SQS queues of those instances, so a cluster that scales in
does not keep paying for queues nobody reads.
"""

from __future__ import annotations

import logging
import time

from skynet_tasks.artifacts import ExpectedRelease
from skynet_tasks.builder import read_manifest
from skynet_tasks.buildrequest import BuildRequest
from skynet_tasks.buildspec import BuildSpecError
from skynet_tasks.commands import CommandFailed, CommandLog
from skynet_tasks.context import Context
from skynet_tasks.installer import UpdateFailed, install, restart_current
from skynet_tasks.registration import tell_proxies
from skynet_tasks.services import ServiceError
from skynet_tasks.settings import Settings
from skynet_tasks.states import ReleaseState, RolloutKind, RolloutState
from skynet_tasks.update_context import update_context

log = logging.getLogger(__name__)

# Readers ignore an entry older than the max age at once; the sweeper waits this many
# max ages more before it deletes the instance's queue, so a worker that was only
# slow (a long GC pause, a saturated host) is not cut off from its own messages.
SWEEP_AFTER_MAX_AGES = 3

def converge_at_boot(ctx: Context) -> str | None:
    """Install the group's desired release on an instance that has none; return it, or None if nothing changed.

    Only an empty instance converges at boot. One that already runs a release
    (a restarted worker, a rebooted host) keeps it: if it is behind, its
    heartbeat takes a ticket in the running rollout, and a halted rollout is not
    pushed onto it behind the operator's back.
    """
    s = ctx.settings
    desired = ctx.ledger.group_info(s.group).get("desired_release")
    if not desired or ctx.layout.current_release() is not None:
        return None
    release = ctx.ledger.release(s.group, desired)
    if release is None or release.state is not ReleaseState.BUILT or not release.manifest_key:
        log.warning("group %s wants release %s but it is not built; starting without it", s.group, desired)
        return None
    log.info("joining group %s: installing its release %s before registering", s.group, desired)
    try:
        # Hooks see ticket 0 of rollout "boot": no ticket is involved.
        boot = update_context(ctx, {"SKYNET_ROLLOUT": "boot", "SKYNET_TICKET": "0"})
        install(boot, read_manifest(ctx.store, release.manifest_key), ExpectedRelease.of(release))
    except UpdateFailed as failure:
        # Registering anyway lets the heartbeat take a ticket and an operator see the failure.
        log.error("could not install release %s at boot: %s", desired, failure.reason)
        return None
    return str(desired)


def restart_app_if_down(ctx: Context) -> bool:
    """Start the app on the current release if it is not running; True if it had to.

    The app outlives the worker (its own supervisor or systemd unit), but a rebooted
    host, or a supervisor that gave up on a crashing app, leaves none: the release on
    disk is served again before the instance registers.
    """
    if ctx.layout.current_release() is None or ctx.services().running():
        return False
    log.warning("the app of release %s is not running; starting it", ctx.layout.current_release())
    try:
        restart_current(update_context(ctx, {"SKYNET_ROLLOUT": "boot", "SKYNET_TICKET": "0"}), CommandLog())
    except (BuildSpecError, CommandFailed, ServiceError, OSError) as error:
        log.error("the app did not start healthy: %s (the instance registers unhealthy)", error)
    return True


def sweep(ctx: Context) -> list[str]:
    """Prune long-silent registry entries of the env; return their instance ids.

    Their queues stay: an instance may not delete a queue it did not create (its role has no
    ``sqs:DeleteQueue``), so the operator removes them (``skynet queues prune``).
    """
    s = ctx.settings
    removed = ctx.registry.prune(s.env, s.heartbeat_max_age * SWEEP_AFTER_MAX_AGES)
    if removed:
        log.info("swept %s from the registry, silent for over %.0fs", ", ".join(removed),
                 s.heartbeat_max_age * SWEEP_AFTER_MAX_AGES)
    return removed


# A build nobody has run for an hour after its request is left to the operator (``skynet deploy`` it again):
# every member looks for stalled builds every minute, and each look reads only the rollouts of this last hour.
NUDGE_FOR = 3600.0


def build_check_interval(settings: Settings) -> float:
    """Seconds between a member's looks for stalled builds (``nudge_stalled_builds``): a heartbeat, or half the
    nudge's delay if longer. A build nobody runs is then sent again at most one interval after the delay,
    whatever the group's size: 105 s after its request on AWS's one-minute heartbeat. (Sampled one heartbeat
    in ten, as the sweep is, a three-instance group on AWS waited over four minutes on average, a group of one
    ten.)"""
    return max(settings.heartbeat_interval, settings.build_nudge_after / 2)


def nudge_stalled_builds(ctx: Context, now: float | None = None) -> list[str]:
    """Re-send the build of recent rollouts of this group that no instance is running; return their ids.

    A build is stalled when it was requested over ``SKYNET_BUILD_NUDGE_AFTER`` seconds ago (and less than
    ``NUDGE_FOR``: an idle group's look is then one query that finds nothing), no
    instance holds a live build claim on its release (a builder renews it at every heartbeat:
    ``tasks.build.build_lease``), and it was not nudged within the last as many seconds. A
    duplicate build message is harmless: the rollout and the build claim are conditional writes.
    """
    s = ctx.settings
    now = time.time() if now is None else now
    nudged = []
    for rollout_id in ctx.ledger.recent_rollouts(s.group, 5, since=now - NUDGE_FOR):
        item = ctx.ledger.rollout_item(rollout_id)
        if item is None or item.get("state") != RolloutState.BUILDING:
            continue
        if item.get("kind", RolloutKind.CODE) != RolloutKind.CODE:
            continue  # config and agent rollouts have no build; their announcement is re-sent by pushing again
        last = max(float(item.get("requested_at") or 0), float(item.get("nudged_at") or 0))
        if now - last < s.build_nudge_after:
            continue
        release = ctx.ledger.release(s.group, str(item["release"]))
        if release is not None and release.state is ReleaseState.BUILDING and release.lease_until > now:
            continue  # someone is building it right now
        ctx.ledger.annotate_rollout(rollout_id, {"nudged_at": now})
        request = BuildRequest(group=s.group, repo=str(item.get("repo") or s.repo), branch=str(item.get("branch")
                               or s.branch), sha=str(item["release"]), rollout_id=rollout_id,
                               source=str(item.get("source") or "nudge"), requested_at=float(item["requested_at"]),
                               forced=item.get("forced") is True)
        ctx.messenger.build(s.group, request.to_dict(), attempt=f"nudge:{now}")
        log.warning("rollout %s: no instance started its build in %.0fs; build re-sent", rollout_id, now - last)
        nudged.append(rollout_id)
    return nudged


def leave(ctx: Context) -> None:
    """Clean shutdown: take this instance out of the registry at once (the proxy stops routing to it)."""
    s = ctx.settings
    ctx.registry.deregister(s.env, s.layer, s.instance_id)
    tell_proxies(ctx)
    log.info("instance %s deregistered", s.instance_id)



