"""Handing a conductor step's notices to the instance's own queue, without waiting for any receiver.

One ``skynet.notify`` message per notice and target, sent to this instance's own queue: the work
worker's pool child sends it, with Celery's retries, while the conductor's step (in the worker's main
process) goes on. A hand-off that fails (an unreadable config, SQS refusing the message) is logged and
dropped: the decision is already written, and a notification never changes a rollout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from skynet_tasks.notify.events import Notice
from skynet_tasks.notify.targets import load_config

log = logging.getLogger(__name__)

NOTIFY_TASK = "skynet.notify"
# A notice older than this is not worth telling any more (the task's retries end well before).
EXPIRES = 3600.0


def hand_off(ctx: Any, notices: Sequence[Notice]) -> int:
    """Queue each notice for each target configured on this instance; the messages sent (never raises).

    ``ctx`` is the step's Context: its settings (instance, config directory) and its messenger.
    """
    if not notices:
        return 0
    sent = 0
    try:
        targets = load_config(ctx.settings.config_dir).targets
        for notice in notices:
            for target in targets:
                ctx.messenger.to_instance(ctx.settings.instance_id, NOTIFY_TASK,
                                          {"target": target, "notice": notice.to_message()}, expires=EXPIRES)
                sent += 1
    except Exception as error:  # noqa: BLE001 - a notification must never fail the step that wrote its decision
        log.warning("rollout %s: notices not handed off after %d of them: %s", notices[0].rollout_id, sent, error)
    return sent
