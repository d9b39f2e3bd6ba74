"""``notify``: send one rollout notice to one target (SNS, a webhook, GitHub's Deployments API).

Sent by a conductor step to its own instance's queue (``skynet_tasks.notify.handoff``), so it runs in
the work worker's pool child, never in the conductor. That child is the instance's only one: an update
or a build for this instance waits behind a notice being sent, so each request is bounded (5 s,
``transport.TIMEOUT``; GitHub's take up to four) and the task's hard limit is 30 s.

Each target is a task of its own, retried on its own with Celery's exponential backoff (up to 2, 4,
8 … s, at most ``BACKOFF_MAX``, jittered) while the receiver is down or busy; a refusal (a 4xx, a bad
config) is not retried. After the last retry the task fails, which the dashboard's task page shows.
Nothing here touches the rollout.

Trust: the message comes from this env's queues (IAM), and the notice in it is still checked
(``events.from_message``); the targets and their secrets are read from the config directory.
"""

from __future__ import annotations

import logging
from typing import Any

from skynet_tasks.app import app
from skynet_tasks.notify.delivery import deliver
from skynet_tasks.notify.events import from_message
from skynet_tasks.notify.handoff import NOTIFY_TASK
from skynet_tasks.notify.transport import NotifyRetry
from skynet_tasks.tasks.base import SkynetTask

log = logging.getLogger(__name__)

MAX_RETRIES = 8  # 2 + 4 + … + 64 + 120 + 120 s: up to six minutes of a receiver down before giving up
BACKOFF_MAX = 120  # well under the instance queue's visibility timeout, which a held retry must not reach


@app.task(name=NOTIFY_TASK, base=SkynetTask, bind=True, autoretry_for=(NotifyRetry,), retry_backoff=2,
          retry_backoff_max=BACKOFF_MAX, retry_jitter=True, max_retries=MAX_RETRIES, soft_time_limit=25,
          time_limit=30)
def notify(self: SkynetTask, target: str, notice: dict[str, Any]) -> bool:
    """Send ``notice`` to ``target``; False if that target is no longer configured."""
    settings = self.ctx.settings
    return deliver(settings.config_dir, settings.env, self.ctx.aws, target, from_message(notice))
