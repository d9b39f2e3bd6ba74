"""Operator actions on rollouts, groups and instances: pause, resume, abort, retry, promote, rollback, drain.

The CLI and the dashboard both call these. An action on a rollout is a
maintenance event like any other, decided by the conductor in the group's
FIFO order, so it can never race a ticket hand-off. Every action is recorded
with who asked and when.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass

from skynet_tasks.conductor import OPERATOR_ACTIONS, OperatorAction, canary_failed
from skynet_tasks.conductor.batches import still_updating
from skynet_tasks.conductor.promotion import refusal
from skynet_tasks.deploys import StartedBuild, group_source, request_build
from skynet_tasks.events import to_message
from skynet_tasks.ledger import Ledger
from skynet_tasks.messages import DRAIN_TASK, Messenger
from skynet_tasks.proxy.notify import notify_proxies
from skynet_tasks.registry import Registry
from skynet_tasks.states import Health, ReleaseState, RolloutState

log = logging.getLogger(__name__)


# Proxies told about a drain: any that beat within the last ten minutes.
PROXY_MAX_AGE = 600.0


class OperatorError(Exception):
    """The action cannot be taken (unknown rollout, nothing to roll back to…)."""


class NotFound(OperatorError):
    """The action names a rollout, group, instance or release that does not exist (or not one only)."""


@dataclass(frozen=True)
class ActionRecord:
    """An operator's request as the ledger records it: on which group and rollout, what, who, when."""

    group: str
    rollout_id: str | None
    action: str
    actor: str
    at: float
    identity: str | None = None  # the AWS identity (an ARN) that asked, when the CLI did


def rollout_action(ledger: Ledger, messenger: Messenger, rollout_id: str, action: str, actor: str,
                   identity: str | None = None) -> ActionRecord:
    """Ask the group's conductor to pause, resume, abort, retry or promote ``rollout_id`` (recorded with
    ``identity``); OperatorError if the action would change nothing (a promote of a rollout not waiting for one)."""
    if action not in OPERATOR_ACTIONS:
        raise OperatorError(f"unknown action {action!r}; choose one of {', '.join(OPERATOR_ACTIONS)}")
    rollout = ledger.rollout_item(rollout_id)
    if rollout is None:
        raise NotFound(f"no rollout {rollout_id}")
    state = RolloutState(rollout["state"])
    if state.finished:
        raise OperatorError(f"rollout {rollout_id} is {state}: nothing to {action}")
    if action in ("resume", "retry"):
        loaded = ledger.load_rollout(rollout_id)
        if action == "resume" and loaded is not None and canary_failed(loaded):
            raise OperatorError(f"rollout {rollout_id} failed on its canary: `retry` it, or push a fix")
        # The conductor would ignore it: a halted batch's other tickets finish first (conductor.batches).
        if state is RolloutState.HALTED and loaded is not None and still_updating(loaded):
            raise OperatorError(f"rollout {rollout_id}: tickets of its halted batch are still updating; "
                                f"{action} it once they have finished")
    if action == "promote":
        refused = refusal(ledger.load_rollout(rollout_id), rollout_id)
        if refused is not None:
            raise OperatorError(refused)
    record = ActionRecord(rollout["group"], rollout_id, action, actor, time.time(), identity)
    ledger.record_action(record.group, record.__dict__)
    body, _ = to_message(OperatorAction(rollout_id, action, actor))
    # Each request is its own event: an operator may pause, resume and pause again.
    messenger.maintenance(record.group, body, f"operator:{rollout_id}:{action}:{secrets.token_hex(8)}")
    log.info("rollout %s: %s requested by %s", rollout_id, action, actor)
    return record


def rollback(ledger: Ledger, messenger: Messenger, group: str, actor: str, to: str | None = None,
             identity: str | None = None) -> StartedBuild:
    """Roll ``group`` back to its previous good release, or to the built release ``to`` (a sha or a unique
    prefix of one), as a new rollout of a release built once already (recorded with ``identity``)."""
    info = ledger.group_info(group)
    if not info:
        raise NotFound(f"no group {group}")
    target = _built_release(ledger, group, to) if to else info.get("previous_release")
    if not target:
        raise OperatorError(f"group {group} has no previous release to roll back to")
    repo, branch = group_source(ledger, group)
    started = request_build(ledger, messenger, group, repo, branch, target, source=f"rollback by {actor}")
    ledger.record_action(group, {"group": group, "rollout_id": started.rollout_id, "action": "rollback",
                                 "actor": actor, "at": time.time(), "release": target, "identity": identity})
    return started


def _built_release(ledger: Ledger, group: str, wanted: str) -> str:
    """The sha of the group's one built release that ``wanted`` names (untrusted: the operator's typing)."""
    found = [r.sha for r in ledger.releases(group) if r.state is ReleaseState.BUILT and r.sha.startswith(wanted)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(f"group {group} has no built release {wanted}")
    raise NotFound(f"{wanted} names {len(found)} releases of group {group}: give more of the sha")


def drain_instance(ledger: Ledger, registry: Registry, messenger: Messenger, env: str, instance_id: str,
                   actor: str, undo: bool = False, identity: str | None = None) -> ActionRecord:
    """Take ``instance_id`` out of the proxy (or, with ``undo``, put it back) and record who asked
    (``actor``, and the AWS ``identity`` when known).

    The registry entry changes at once, so the proxy drops the instance within a
    sync; the instance itself is told too, so that its own heartbeats keep
    reporting it draining until an operator undoes it. (A heartbeat already on its
    way may write it back to healthy until the instance takes the drain, within
    moments: its worker's main process runs both.)
    """
    found = registry.find(env, instance_id)
    if found is None:
        raise NotFound(f"no instance {instance_id} is registered in env {env}")
    layer, endpoint = found
    if not undo:
        registry.set_health(env, layer, instance_id, str(Health.DRAINING))
    messenger.to_instance(instance_id, DRAIN_TASK, {"drain": not undo})
    notify_proxies(registry, messenger, env, PROXY_MAX_AGE)
    action = "undrain" if undo else "drain"
    record = ActionRecord(endpoint.group, None, action, actor, time.time(), identity)
    ledger.record_action(endpoint.group, {**record.__dict__, "instance": instance_id})
    log.info("instance %s: %s requested by %s", instance_id, action, actor)
    return record

