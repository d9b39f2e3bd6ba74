"""Acknowledging several SQS messages of one receive with one ``DeleteMessageBatch``.

kombu acknowledges a message with one ``DeleteMessage`` request (``Channel.basic_ack``). The
conductor settles a run of ticket requests together, up to ten from one receive, and each delete
took 10 to 60 ms on a busy local cluster: a run of ten held its FIFO message group (the next
requests) and the conductor's thread for 0.2 s after its decision was written, while a rollout's
members lined up behind it (benchmarks/RESULTS.md). One batch request deletes them all, and costs
one request instead of ten.

kombu has no batch acknowledgement, so this reads what its SQS channel keeps of each delivery
(``delivery_info``'s ``sqs_message`` and ``sqs_queue``, as ``basic_ack`` does) and releases each
delivery from the channel's prefetch accounting (``virtual.Channel.basic_ack``, what kombu's own
``basic_ack`` ends with). That is written for kombu 5.7 (``SUPPORTED``); on any other version, or
for a message not received from SQS, each message is acknowledged alone, as before. A message
the batch could not delete (a stale receipt handle, an SQS error) is acknowledged alone too, so
kombu's own handling of that error applies; a batch request that fails whole leaves every message
to that same path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from packaging.specifiers import SpecifierSet

from skynet_tasks.compat.patching import installed_version

log = logging.getLogger(__name__)

SUPPORTED = SpecifierSet(">=5.7,<5.8")
BATCH_MAX = 10  # SQS's most entries per DeleteMessageBatch


def supported() -> bool:
    """Whether the installed kombu keeps its SQS deliveries as this module reads them."""
    return installed_version("kombu") in SUPPORTED


def ack_together(messages: Sequence[Any]) -> None:
    """Acknowledge ``messages`` (kombu messages from an SQS channel), with one request per queue and ten messages."""
    batchable: dict[tuple[int, str], list[Any]] = {}
    alone: list[Any] = []
    if len(messages) > 1 and supported():
        for message in messages:
            info = message.delivery_info
            if "sqs_message" in info and "sqs_queue" in info and message.channel is not None:
                batchable.setdefault((id(message.channel), info["sqs_queue"]), []).append(message)
            else:
                alone.append(message)
    else:
        alone = list(messages)
    for (_, queue_url), same_queue in batchable.items():
        for start in range(0, len(same_queue), BATCH_MAX):
            alone += _delete_batch(queue_url, same_queue[start:start + BATCH_MAX])
    for message in alone:
        message.ack()


def _delete_batch(queue_url: str, messages: Sequence[Any]) -> list[Any]:
    """Delete ``messages`` of ``queue_url`` in one request and release their deliveries; those left to ack alone."""
    from kombu.transport import virtual

    channel = messages[0].channel
    info = messages[0].delivery_info
    queue = channel.canonical_queue_name(info["routing_key"]) if "routing_key" in info else None
    entries = [{"Id": str(n), "ReceiptHandle": m.delivery_info["sqs_message"]["ReceiptHandle"]}
               for n, m in enumerate(messages)]
    try:
        response = channel.sqs(queue=queue).delete_message_batch(QueueUrl=queue_url, Entries=entries)
    except Exception:  # noqa: BLE001 - each message is acknowledged alone next, with kombu's own error handling
        log.warning("DeleteMessageBatch of %d messages failed; acknowledging them one by one", len(messages),
                    exc_info=True)
        return list(messages)
    deleted = {entry["Id"] for entry in response.get("Successful", [])}
    for n, message in enumerate(messages):
        if str(n) in deleted:
            virtual.Channel.basic_ack(channel, message.delivery_tag)  # the prefetch slot, as kombu's ack releases it
            message._state = "ACK"  # what kombu's Message.ack records, so a second ack is refused as usual
    return [m for n, m in enumerate(messages) if str(n) not in deleted]
