"""Celery settings for Skynet workers and senders (the CLI, the webhook).

Nothing here reads the environment: ``config(settings)`` is the whole Celery configuration,
made from the ``Settings`` its process built at start (``skynet_tasks.app.configure``).

The broker is SQS. ``sqs://`` has no host on purpose: kombu then takes the
endpoint from ``AWS_ENDPOINT_URL`` (moto's server locally, unset on AWS) and
region and credentials from boto3's usual chain, exactly like every boto3
client Skynet makes. Nothing here names an endpoint or a credential.
"""

from __future__ import annotations

from typing import Any

from skynet_tasks import names
from skynet_tasks.aws import client_settings
from skynet_tasks.settings import Settings

STATIC: dict[str, Any] = {
    "broker_connection_retry_on_startup": True,
    # Every task is idempotent and acknowledged only once it has run: a worker that
    # dies mid-task leaves the message to come back, and the state table's
    # conditional writes make the second run harmless.
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "task_ignore_result": True,
    "task_serializer": "json",
    "accept_content": ["json"],
    "result_serializer": "json",
    # One message at a time per instance: with a larger prefetch kombu receives several
    # messages of a FIFO group at once and they run in parallel (celery issue 8352).
    "worker_prefetch_multiplier": 1,
    "worker_concurrency": 1,
    # SQS carries neither remote control nor events; enabling them only creates
    # pidbox and event queues that nothing reads (celery 3280, 6575).
    "worker_enable_remote_control": False,
    "worker_send_task_events": False,
    "task_send_sent_event": False,
    "worker_hijack_root_logger": False,
    "include": ["skynet_tasks.tasks"],
}


def config(settings: Settings, members_topic: str | None = None) -> dict[str, Any]:
    """Celery's configuration for a process with these settings (and, on an instance whose group has one, the
    ARN of the group's SNS topic: ``skynet_tasks.broadcast``)."""
    return {
        **STATIC,
        "broker_url": settings.broker_url,
        "broker_transport_options": {
            # Long polling: an idle queue costs one ReceiveMessage per wait, and a message
            # is picked up as soon as it arrives (about 10 ms against moto).
            "wait_time_seconds": settings.poll_wait,
            "polling_interval": settings.poll_interval,
            # Only used if kombu ever has to create a queue itself (sending to a queue that
            # bootstrap did not make): the instance queues' own (``queues.INSTANCE_VISIBILITY``).
            "visibility_timeout": 900,
            # kombu's own SQS client retries throttling and 5xx as every Skynet client does.
            "client-config": client_settings(),
            # The group's broadcast: kombu publishes to a fanout exchange through the SNS topic named here
            # (``Messenger.to_members``); a topic the stack made, never one kombu would create.
            **({"supports_fanout": True,
                "predefined_exchanges": {names.members_topic(settings.env, settings.group): {"arn": members_topic}}}
               if members_topic else {}),
        },
        # Kept for the tasks' Context (skynet_tasks.app.settings_of): the settings of this process's start.
        "skynet_settings": settings,
    }
