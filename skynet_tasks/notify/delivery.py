"""Delivering one notice to one target: the body of the ``skynet.notify`` task.

The targets are read again from the config directory at each attempt (a fixed URL or token takes
effect at the next retry), and a target no longer configured is skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from skynet_tasks.notify.events import Notice
from skynet_tasks.notify.github import GitHubDeployments
from skynet_tasks.notify.sns import publish_notice
from skynet_tasks.notify.targets import load_config
from skynet_tasks.notify.webhook import post_notice

log = logging.getLogger(__name__)


def deliver(config_dir: Path, env: str, aws: Any, target: str, notice: Notice) -> bool:
    """Send ``notice`` to ``target`` as configured in ``config_dir`` now; False when that target is not configured.

    Raises NotifyRetry (try again later), NotifyRefused or NotifyConfigError (no use trying again),
    or the SNS client's error.
    """
    config = load_config(config_dir)
    if target == "webhook" and config.webhook is not None:
        post_notice(config.webhook, env, notice)
    elif target == "github" and config.github is not None:
        deployment = GitHubDeployments(config.github).report(notice)
        log.info("rollout %s: %s on GitHub deployment %s", notice.rollout_id, notice.kind, deployment)
    elif target == "sns" and config.sns is not None:
        publish_notice(aws.client("sns"), aws.client("sts"), config.sns, env, notice)
    else:
        log.warning("rollout %s: %s not sent to %s: no longer configured", notice.rollout_id, notice.kind, target)
        return False
    log.info("rollout %s: %s sent to %s", notice.rollout_id, notice.kind, target)
    return True
