"""Scale-in without dropped work: when the auto scaling group terminates this instance, leave first.

The template's termination lifecycle hook holds the instance in ``Terminating:Wait``;
IMDS then reports ``Terminated`` as the target lifecycle state. The watcher sees it,
deregisters the instance (the proxy stops routing to it) and stops the worker (the
task in hand finishes, its message is acknowledged); once the worker has shut down,
the lifecycle action is completed so the instance goes on terminating. If anything
fails, the hook's own timeout (300 s, default CONTINUE) lets termination go on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.client import HTTPException
from typing import Any

from skynet_tasks.httpcheck import http_get

log = logging.getLogger(__name__)

TARGET_STATE_PATH = "/latest/meta-data/autoscaling/target-lifecycle-state"
GROUP_TAG_PATH = "/latest/meta-data/tags/instance/aws:autoscaling:groupName"


class Imds:
    """IMDSv2 on ``host:port`` (169.254.169.254:80 on EC2; a fake one in tests)."""

    def __init__(self, host: str = "169.254.169.254", port: int = 80, timeout: float = 1.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout

    def get(self, path: str) -> str | None:
        """The metadata at ``path`` (IMDSv2, with a fresh token), or None if it cannot be read."""
        try:
            status, token = http_get(self.host, self.port, "/latest/api/token", self.timeout, method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
            if status != 200:
                return None
            status, body = http_get(self.host, self.port, path, self.timeout,
                                    headers={"X-aws-ec2-metadata-token": token.decode()})
        except (OSError, HTTPException):
            return None
        return body.decode().strip() if status == 200 else None


def watch_termination(imds: Imds, instance_id: str, on_terminate: Callable[[], None], stop: threading.Event,
                      interval: float = 5.0) -> bool:
    """Poll until the instance is being terminated (True, after ``on_terminate``) or ``stop`` is set (False)."""
    while not stop.wait(interval):
        if imds.get(TARGET_STATE_PATH) == "Terminated":
            log.warning("instance %s is being terminated by its auto scaling group; leaving", instance_id)
            on_terminate()
            return True
    return False


def complete_lifecycle(imds: Imds, autoscaling: Any, hook: str, instance_id: str) -> bool:
    """Let the termination go on (once the worker has finished its task); False if the group is unknown."""
    group = imds.get(GROUP_TAG_PATH)
    if not group:
        log.error("cannot complete lifecycle action %s: the instance's group tag is not in metadata", hook)
        return False
    autoscaling.complete_lifecycle_action(LifecycleHookName=hook, AutoScalingGroupName=group,
                                          LifecycleActionResult="CONTINUE", InstanceId=instance_id)
    log.info("lifecycle action %s of %s completed for %s", hook, group, instance_id)
    return True
