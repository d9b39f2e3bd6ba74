"""The ``duplicates`` fault mode: SQS delivers a message again after its consumer deleted it, as AWS can.

What AWS documents, and what is modelled:

- Standard queues deliver at least once: "Amazon SQS stores copies of your messages on multiple
  servers ... On rare occasions, one of the servers that stores a copy of a message might be
  unavailable when you receive or delete a message. If this occurs, the copy of the message isn't
  deleted on the server that is unavailable, and you might get that message copy again"
  (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/standard-queues-at-least-once-delivery.html).
  Here a share RATE of the deletes on a standard queue delete the message, and a copy of it (same
  ``MessageId``, body and attributes) is put back, visible at once: a later ``ReceiveMessage``
  returns it with a new receipt handle.
- FIFO queues do not duplicate a message on their own (exactly-once processing), but a message whose
  visibility timeout ends before its consumer deletes it is delivered again, in its place in its
  message group (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html).
  Here a share RATE of the deletes on a FIFO queue come too late: the message stays, visible again
  at once (its group no longer in flight), and is received again with a new receipt handle. AWS may
  answer such a late delete with "The receipt handle has expired"; here it is answered as a success,
  so the consumer sees only the redelivery (what this mode is for).

Each message is duplicated at most once. Trusted input: RATE comes from the operator's command line.
"""

from __future__ import annotations

import copy
import logging
import random
import threading
from contextlib import ExitStack

from skynet_tasks.compat import moto_sqs
from skynet_tasks.local.fault_counter import FaultCounter

log = logging.getLogger(__name__)


class Duplicator:
    """Chooses which deletes leave a message to be delivered again: a random ``rate`` of them, once per message."""

    def __init__(self, rate: float, counter: FaultCounter, seed: int | None = None) -> None:
        self.rate = rate
        self.counter = counter
        # Fault injection, not security: a plain PRNG, seedable to replay a run.
        self._random = random.Random(seed)  # noqa: S311  # nosec B311
        self._duplicated: set[str] = set()  # message ids delivered again already
        self._lock = threading.Lock()

    def choose(self, message_id: str) -> bool:
        """Whether the delete of ``message_id`` is to leave it to be delivered again."""
        with self._lock:
            if message_id in self._duplicated or self._random.random() >= self.rate:
                return False
            self._duplicated.add(message_id)
            return True


def install(rate: float, counter: FaultCounter, stack: ExitStack) -> None:
    """Make a random ``rate`` of this moto server's SQS deletes leave the message to be delivered again."""
    from moto.sqs.models import Queue

    from skynet_tasks.compat.patching import replace

    duplicator = Duplicator(rate, counter)

    def delete_message(self: Queue, receipt_handle: str) -> None:
        message = next((m for m in list(self._messages) if m.had_receipt_handle(receipt_handle)), None)
        if message is None or receipt_handle in self.deleted_messages or not duplicator.choose(message.id):
            moto_delete(self, receipt_handle)
            return
        if self.fifo_queue:
            # The delete came after the visibility timeout: the message is in its group's line again.
            with self._messages_lock:
                message.visible_at = 0.0
                self.pending_messages.discard(message)
            moto_sqs.changed(self)
            kind = "fifo"
        else:
            again = copy.deepcopy(message)
            moto_delete(self, receipt_handle)
            # The copy on the server the delete did not reach: a new delivery of the same message.
            again.receipt_handle = None
            again._old_receipt_handles = []
            again.visible_at = 0.0
            with self._messages_lock:
                self._messages.append(again)
            moto_sqs.changed(self)
            kind = "standard"
        duplicator.counter.add(f"duplicated:{kind}")
        log.info("faults: SQS message %s in %s will be delivered again (%s queue)", message.id, self.name, kind)

    # Wraps compat.moto_sqs's delete (installed first), which wakes the polls of a FIFO queue.
    moto_delete = replace(stack, Queue, "delete_message", delete_message)
