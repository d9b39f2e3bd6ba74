"""``update``: this instance's number came up; it updates for its ticket and reports back.

Code, config and agent rollouts share the ticket's path (drain, update, health check,
re-register, report) and differ only in what the update installs (``UPDATERS``). On a
failure the installer has put the previous release back; the report says so and the
conductor halts the rollout. The instance decides its own report's conductor step (``tasks.report``).

A code rollout with a bake time (``min_healthy_time``) keeps the updated instance on its new
release, back in the proxies, while its health check keeps passing that long (``skynet_tasks.bake``);
if it fails, the instance leaves the proxies, returns to its previous release and reports a failure.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any

from skynet_tasks.agent import restart_requested
from skynet_tasks.app import app
from skynet_tasks.artifacts import ExpectedRelease
from skynet_tasks.bake import TurnedUnhealthy, bake
from skynet_tasks.builder import read_manifest
from skynet_tasks.commands import CommandLog
from skynet_tasks.conductor import UPDATE_HARD_LIMIT, UpdateReported
from skynet_tasks.context import Context
from skynet_tasks.installer import UpdateContext, UpdateFailed, install, roll_back
from skynet_tasks.messages import UPDATE_TASK
from skynet_tasks.policy import PolicyError, parse_min_healthy_time
from skynet_tasks.proxy.handshake import drain
from skynet_tasks.redaction import Redactor, store_log
from skynet_tasks.registration import entry_written, keep_registered, own_entry, register_self, tell_proxies
from skynet_tasks.registry import Endpoint
from skynet_tasks.states import Health, ReleaseState, RolloutKind
from skynet_tasks.tasks.base import SkynetTask
from skynet_tasks.tasks.report import report_update
from skynet_tasks.update_context import update_context

log = logging.getLogger(__name__)


@app.task(name=UPDATE_TASK, base=SkynetTask, bind=True, soft_time_limit=UPDATE_HARD_LIMIT - 20,
          time_limit=UPDATE_HARD_LIMIT)
def update(self: SkynetTask, rollout_id: str, ticket: int) -> None:
    """Update this instance for ``ticket`` of ``rollout_id`` and report the outcome to the conductor."""
    handle_update(self.ctx, rollout_id, ticket)
    if restart_requested(self.ctx.settings.root):
        # A new agent is installed and this ticket is reported: a warm shutdown of the worker
        # (this pool process's parent) lets this task finish and its message be acknowledged,
        # then ``skynet worker`` re-executes itself on the new version.
        os.kill(os.getppid(), signal.SIGTERM)


def handle_update(ctx: Context, rollout_id: str, ticket: int) -> None:
    """Update this instance for ``ticket`` if it is still this instance's turn, then report back."""
    me = ctx.settings.require_instance().instance_id
    attempt = ctx.ledger.acknowledge_ticket(rollout_id, ticket, me)
    if attempt is None:
        log.info("rollout %s: ticket %d is not updating on %s any more (or was reported); ignoring the update"
                 " message", rollout_id, ticket, me)
        return
    rollout = ctx.ledger.rollout_item(rollout_id) or {}
    kind = RolloutKind(rollout.get("kind", RolloutKind.CODE))
    ok, error, log_text = True, None, ""
    try:
        drain(ctx, f"update {rollout_id}#{ticket}")  # no proxy routes here any more: the app may stop
        update_ctx = update_context(ctx, {"SKYNET_ROLLOUT": rollout_id, "SKYNET_TICKET": str(ticket)})
        previous = ctx.layout.current_release()
        seconds = bake_time(rollout) if kind is RolloutKind.CODE else 0.0  # (refused before anything is installed)
        with keep_registered(ctx, f"update {rollout_id}#{ticket}", Health.DRAINING):
            log_text = UPDATERS[kind](ctx, update_ctx, rollout)
        if seconds > 0:
            log_text = bake_in_service(ctx, update_ctx, rollout_id, ticket, seconds, previous, log_text)
    except UpdateFailed as failure:
        ok, error, log_text = False, failure.reason, failure.log_text
    except Exception as unexpected:  # noqa: BLE001 - any failure must be reported, or the line stalls
        log.exception("rollout %s: update of ticket %d crashed", rollout_id, ticket)
        ok, error = False, f"update crashed: {unexpected!r}"
    # The outcome goes with the ticket too: a heartbeat sends the report again if it was never decided
    # (``re_register.report_undecided``).
    annotations: dict[str, Any] = {"reported_attempt": attempt, "reported_ok": ok,
                                   **({"reported_error": error} if error else {})}
    log_key = f"logs/updates/{rollout_id}/{ticket:06d}-{me}.log"
    try:
        store_log(ctx.store, log_key, log_text or (error or "") + "\n", Redactor.for_settings(ctx.settings))
        annotations["log_key"] = log_key
    except Exception:  # noqa: BLE001 - the report matters more than its log
        log.exception("rollout %s: could not store the log of ticket %d", rollout_id, ticket)
    # Marked reported before the report goes out, so that a duplicate update message can no longer run it;
    # back in the registry before it too: the next instance's drain waits for the proxies to read the
    # registry after its own write, so they route here again before it stops its app. Telling the
    # proxies can wait until the report is out: that drain tells them too.
    reported_at = time.time()
    # A code or config update that succeeded has just passed the app's health check (``installer.wait_healthy``):
    # the entry says so without probing again, which cost a read of skynet.yml and a request to the app on
    # the hand-off's path. Otherwise (a failure rolled back, an agent update) the app is probed.
    checked = Health.HEALTHY if ok and kind in (RolloutKind.CODE, RolloutKind.CONFIG) else None
    changed = mark_reported(ctx, rollout_id, ticket, {**annotations, "reported_at": reported_at},
                            last_task=f"update {rollout_id}#{ticket}", last_outcome="ok" if ok else f"failed: {error}",
                            health=checked)
    report_update(ctx, UpdateReported(rollout_id, ticket, me, ok, error, reported_at))  # decided here (tasks.report)
    if changed:
        try:
            tell_proxies(ctx)
        except Exception:  # noqa: BLE001 - the proxies' own poll catches up (SKYNET_RP_POLL)
            log.exception("rollout %s: could not tell the proxies after ticket %d", rollout_id, ticket)
    log.info("rollout %s: ticket %d on %s %s%s", rollout_id, ticket, me, "succeeded" if ok else "failed",
             f": {error}" if error else "")


def mark_reported(ctx: Context, rollout_id: str, ticket: int, annotations: dict[str, Any], last_task: str,
                  last_outcome: str, health: Health | None = None) -> bool:
    """Annotate the ticket as reported and refresh this instance's registry entry; True if its routing changed.

    Both writes precede the report, which waits for them: one transaction across the state and
    endpoints tables makes them one round trip. If it is refused (the layer's registry item not made
    yet, the ticket gone, a conflict, anything), each write is made on its own, and a failure of either
    is logged, never raised: the report goes out whatever (the conductor ignores a second report, and
    the heartbeat registers again). ``health``: the app's, if the update has just checked it; else probed.
    """
    endpoint: Endpoint | None = None
    together = False
    try:
        endpoint = own_entry(ctx, health, last_task=last_task, last_outcome=last_outcome)
        ctx.aws.dynamodb.transact_write_items(TransactItems=[
            {"Update": ctx.ledger.annotation_update(rollout_id, ticket, annotations)},
            {"Update": ctx.registry.entry_update(ctx.settings.env, ctx.settings.layer, endpoint)}])
        together = True
    except Exception as refused:  # noqa: BLE001 - each write on its own, below
        log.info("rollout %s: ticket %d's report writes not made in one transaction (%s); making them apart",
                 rollout_id, ticket, refused)
    if not together:
        try:
            ctx.ledger.annotate_ticket(rollout_id, ticket, annotations)
        except Exception:  # noqa: BLE001 - the conductor ignores a second report anyway; the first must go out
            log.exception("rollout %s: could not mark ticket %d reported", rollout_id, ticket)
    try:
        if endpoint is None:  # its health probe failed: probed again
            return register_self(ctx, last_task=last_task, last_outcome=last_outcome, notify=False)
        if not together:
            ctx.registry.register(ctx.settings.env, ctx.settings.layer, endpoint)
        return entry_written(ctx, endpoint, notify=False)
    except Exception:  # noqa: BLE001 - the report must go out; the heartbeat registers again
        log.exception("rollout %s: could not re-register after ticket %d", rollout_id, ticket)
        return False


def bake_time(rollout: dict[str, Any]) -> float:
    """The rollout's bake time in seconds (its record, written by the conductor from a checked event)."""
    try:
        return parse_min_healthy_time(rollout.get("min_healthy_time"), "min_healthy_time")
    except PolicyError as error:  # a record changed by hand: fail the update rather than guess
        raise UpdateFailed(f"invalid bake time: {error}", "") from error


def bake_in_service(ctx: Context, update_ctx: UpdateContext, rollout_id: str, ticket: int, seconds: float,
                    previous: str | None, log_text: str) -> str:
    """Serve on the new release for ``seconds`` while its health check keeps passing; return the update's log.

    Raise UpdateFailed, back on ``previous`` and out of the proxies while it restarts, if the check fails.
    """
    task = f"bake {rollout_id}#{ticket}"
    try:  # back in the proxies for the bake: an app that fails only under real requests fails here
        register_self(ctx, last_task=task)
    except Exception:  # noqa: BLE001 - the bake still checks the app; the heartbeat registers it again
        log.exception("rollout %s: could not register for the bake of ticket %d", rollout_id, ticket)
    try:  # shown as the ticket's phase (``skynet rollout status``); only informative
        ctx.ledger.annotate_ticket(rollout_id, ticket, {"bake_started_at": time.time(), "bake_seconds": seconds})
    except Exception:  # noqa: BLE001 - the bake matters more than its display
        log.exception("rollout %s: could not record the bake of ticket %d", rollout_id, ticket)
    try:
        with keep_registered(ctx, task):
            return log_text + bake(update_ctx, seconds)
    except TurnedUnhealthy as unhealthy:
        log.warning("rollout %s: ticket %d %s", rollout_id, ticket, unhealthy.reason)
        drain(ctx, task)  # no proxy routes here any more: the app may restart
        back = CommandLog()
        roll_back(update_ctx, previous, back)
        raise UpdateFailed(unhealthy.reason, log_text + unhealthy.log_text + back.text()) from unhealthy


def install_release(ctx: Context, update_ctx: UpdateContext, rollout: dict[str, Any]) -> str:
    """A code ticket: install the rollout's built release (see ``installer.install``)."""
    sha = rollout.get("release", "")
    release = ctx.ledger.release(ctx.settings.group, sha)
    if release is None or release.state is not ReleaseState.BUILT or not release.manifest_key:
        raise UpdateFailed(f"release {sha} is not built", "")
    return install(update_ctx, read_manifest(ctx.store, release.manifest_key), ExpectedRelease.of(release))


def apply_config(ctx: Context, update_ctx: UpdateContext, rollout: dict[str, Any]) -> str:
    """A config-update ticket: sync the config, restart the app on it, health-check."""
    from skynet_tasks.config.apply import apply_config_update

    return apply_config_update(ctx, update_ctx, str(rollout.get("release") or "") or None)


def update_agent(ctx: Context, update_ctx: UpdateContext, rollout: dict[str, Any]) -> str:
    """A skynet-update ticket: install the agent's new version; the worker restarts once it reported."""
    from skynet_tasks.agent import install_agent

    return install_agent(ctx, rollout)


UPDATERS = {RolloutKind.CODE: install_release, RolloutKind.CONFIG: apply_config, RolloutKind.AGENT: update_agent}
