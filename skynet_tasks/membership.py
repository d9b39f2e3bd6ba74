"""An instance joining and leaving its group: boot convergence, the sweeper, clean shutdown.

A new, empty instance of a group (scale-out, a replaced instance) installs the
group's desired release before it registers, without waiting for a ticket: it was
not serving anything, so there is nothing to take one at a time. The sweeper runs
from heartbeats: it prunes registry entries that stopped beating and deletes the
SQS queues of those instances, so a cluster that scales in does not keep paying
for queues nobody reads.
"""

from __future__ import annotations

import logging

from skynet_tasks import names
from skynet_tasks.builder import read_manifest
from skynet_tasks.context import Context
from skynet_tasks.handlers import update_context
from skynet_tasks.installer import UpdateFailed, install
from skynet_tasks.states import ReleaseState

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
        install(boot, read_manifest(ctx.store, release.manifest_key))
    except UpdateFailed as failure:
        # Registering anyway lets the heartbeat take a ticket and an operator see the failure.
        log.error("could not install release %s at boot: %s", desired, failure.reason)
        return None
    return str(desired)


def sweep(ctx: Context) -> list[str]:
    """Prune long-silent registry entries of the env and delete their instances' queues."""
    s = ctx.settings
    removed = ctx.registry.prune(s.env, s.heartbeat_max_age * SWEEP_AFTER_MAX_AGES)
    for instance_id in removed:
        if instance_id == s.instance_id:
            continue
        if ctx.queues.delete(names.instance_queue(s.env, instance_id)):
            log.info("swept the queues of %s, silent for over %.0fs", instance_id,
                     s.heartbeat_max_age * SWEEP_AFTER_MAX_AGES)
    return removed


def leave(ctx: Context) -> None:
    """Clean shutdown: take this instance out of the registry at once (the proxy stops routing to it)."""
    s = ctx.settings
    ctx.registry.deregister(s.env, s.layer, s.instance_id)
    log.info("instance %s deregistered", s.instance_id)



